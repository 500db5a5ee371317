"""What limits the self-distilled COCO model: the probes behind docs/results.md "COCO's 80 classes".

Usage: python benchmarks/coco80_probes.py levels STUDENT [--levels 8 16 256]   the ANN's oi5 mAP50 at other L
       python benchmarks/coco80_probes.py stages STUDENT                        each stage's error against the teacher
       python benchmarks/coco80_probes.py batchnorm STUDENT                     mAP50 with BN re-estimated on photos
       python benchmarks/coco80_probes.py splits [--images 48]                  the teacher on oi5 train and val
       python benchmarks/coco80_probes.py heldout STUDENT [--images 64]         the distillation loss on train and
                                                                                held-out photos (does it overfit?)
STUDENT: a `distill` run's weights/last.safetensors. The teacher is ../shared/weights/yolov5n-v6.1-coco.pt.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from spikeyolo.data import prepare_dataset
from spikeyolo.data.augment import augmented_batch, photo_files, read_photos
from spikeyolo.data.images import image_batches, split_images
from spikeyolo.eval.anytime import evaluate_anytime
from spikeyolo.eval.val import check_classes
from spikeyolo.quantize.checkpoint import load_detector
from spikeyolo.quantize.qcfs import QCFS
from spikeyolo.quantize.selfdistill import SelfDistiller, SelfDistillSettings, load_teacher
from spikeyolo.tune.calibrate import LayerOutputs
from spikeyolo.ultra import letterbox_batch

TEACHER = "../shared/weights/yolov5n-v6.1-coco.pt"
OI5 = "../shared/datasets/oi5"


@torch.no_grad()
def recalibrate_batchnorm(model, photos: list, imgsz: int, batch: int):
    """Every BatchNorm's running statistics re-estimated (a plain average over batches) on ``photos`` letterboxed as
    detect and val feed them, not augmented as in training."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for first in range(0, len(photos), batch):
        model(letterbox_batch(photos[first:first + batch], imgsz))
    return model.eval()


def oi5_map50(model, split: str = "val", images: int | None = None) -> float:
    data = prepare_dataset(OI5)
    rows = check_classes([model.names[i] for i in sorted(model.names)], data, OI5, "the model")
    found = evaluate_anytime(model.eval(), None, data, [1], 320, 16, "cpu", split, class_rows=rows, max_images=images)
    return round(found["ann"].map50, 4)


def levels(student: str, counts: list[int]) -> None:
    for count in counts:
        model, _ = load_detector(student)
        for module in model.modules():
            if isinstance(module, QCFS):
                module.levels = count
        print(f"L = {count}: oi5 val mAP50 {oi5_map50(model)}")


@torch.no_grad()
def stages(student: str) -> None:
    teacher, (model, _) = load_teacher(TEACHER), load_detector(student)
    images = next(iter(image_batches(split_images(prepare_dataset(OI5), "val")[:32], 320, 32)))
    layers = [f"model.{i}" for i in range(len(teacher.model) - 1)]
    with LayerOutputs(teacher, layers) as taught, LayerOutputs(model, layers) as learnt:
        teacher(images)
        model(images)
    for name in layers:
        error = ((learnt.outputs[name] - taught.outputs[name]) ** 2).mean() / (taught.outputs[name] ** 2).mean()
        print(f"{name} ({type(teacher.get_submodule(name)).__name__}): {float(error):.3f}")


@torch.no_grad()
def batchnorm(student: str) -> None:
    model, _ = load_detector(student)
    print(f"as trained: oi5 val mAP50 {oi5_map50(model)}")
    photos = read_photos(photo_files([f"{OI5}/train2017"]), 320)
    print(f"BN re-estimated on {len(photos)} letterboxed photos: {oi5_map50(recalibrate_batchnorm(model, photos, 320, 16))}")


def splits(images: int) -> None:
    model = load_teacher(TEACHER)
    for split in ("val", "train"):
        print(f"teacher on the first {images} oi5 {split} photos: mAP50 {oi5_map50(model, split, images)}")


@torch.no_grad()
def heldout(student: str, images: int) -> None:
    """The training loss (same augmentation, same terms, BatchNorm on batch statistics as in training) on the first
    ``images`` photos of the train folder and of two folders the student never saw."""
    teacher, (model, _) = load_teacher(TEACHER), load_detector(student)
    distiller = SelfDistiller(teacher, model, SelfDistillSettings(teacher=TEACHER, photos=(f"{OI5}/train2017",)), 1)
    folders = {"oi5 train (trained on)": f"{OI5}/train2017", "oi5 val": f"{OI5}/val2017",
               "coco-tiny": "../shared/datasets/coco-tiny/val2017"}
    for name, folder in folders.items():
        photos = read_photos(photo_files([folder])[:images], 320)
        rng, batches, total = np.random.default_rng(0), 4, {}
        for _ in range(batches):
            for term, value in distiller.losses(augmented_batch(photos, 320, 16, rng)).items():
                total[term] = total.get(term, 0.0) + float(value) / batches
        print(f"{name}: " + ", ".join(f"{term} {value:.3f}" for term, value in total.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=("levels", "stages", "batchnorm", "splits", "heldout"))
    parser.add_argument("student", nargs="?")
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 16, 256])
    parser.add_argument("--images", type=int, default=None, help="splits: 48, heldout: 64")
    args = parser.parse_args()
    if args.probe != "splits" and not args.student:
        parser.error(f"{args.probe} needs STUDENT")
    {"levels": lambda: levels(args.student, args.levels), "stages": lambda: stages(args.student),
     "batchnorm": lambda: batchnorm(args.student), "splits": lambda: splits(args.images or 48),
     "heldout": lambda: heldout(args.student, args.images or 64)}[args.probe]()


if __name__ == "__main__":
    main()
