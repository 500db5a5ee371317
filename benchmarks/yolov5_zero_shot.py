"""What the COCO YOLOv5n knows before any fine-tuning: its own anchor-based head, zero-shot, on a dataset whose
classes are COCO classes (oi5). The reference for docs/results.md "Natural images: oi5": how much of the pretrained model's
accuracy the fine-tuned models (whose anchor-free head starts from scratch) win back.

The .pt is read without unpickling (spikeyolo.pickled); the backbone and neck run as `spikeyolo import` rebuilt them
(ultralytics' v5u, the same tensors); the anchor head's three 1×1 convolutions and anchors are applied here as
YOLOv5 v6.x decodes them (xy = (2σ − 0.5 + cell)·stride, wh = (2σ)²·anchor, score = objectness × class), only the
dataset's classes kept; then ultralytics' NMS and metrics, as `spikeyolo val` uses them (conf 0.001, IoU 0.7).
Usage: python benchmarks/yolov5_zero_shot.py [--weights PT] [--data DIR] [--imgsz 320 640]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from spikeyolo.data import prepare_dataset
from spikeyolo.importing import import_checkpoint
from spikeyolo.pickled import read_pickled_checkpoint
from spikeyolo.ultra import detection_validators


def anchor_head(state: dict, names: list[str], wanted: list[str]):
    """decode(features) → [B, 4 + len(wanted), anchors] (xywh pixels, scores) from the checkpoint's model.24."""
    lower = [n.lower() for n in names]
    missing = [w for w in wanted if w.lower() not in lower]
    if missing:
        raise SystemExit(f"classes {missing} are not among the checkpoint's {len(names)} classes")
    columns = torch.tensor([5 + lower.index(w.lower()) for w in wanted])
    anchors = state["model.24.anchors"]  # [levels, 3, 2] in units of each level's stride

    def decode(features: list[torch.Tensor], strides: torch.Tensor) -> torch.Tensor:
        out = []
        for level, (x, stride) in enumerate(zip(features, strides.tolist())):
            y = F.conv2d(x, state[f"model.24.m.{level}.weight"], state[f"model.24.m.{level}.bias"]).sigmoid()
            batch, _, height, width = y.shape
            y = y.view(batch, 3, -1, height, width).permute(0, 1, 3, 4, 2)
            gy, gx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            cell = torch.stack((gx, gy), -1).view(1, 1, height, width, 2).float() - 0.5
            xy = (y[..., :2] * 2 + cell) * stride
            wh = (y[..., 2:4] * 2) ** 2 * (anchors[level] * stride).view(1, 3, 1, 1, 2)
            scores = y[..., 4:5] * y[..., columns]
            out.append(torch.cat((xy, wh, scores), -1).view(batch, -1, 4 + len(wanted)))
        return torch.cat(out, 1).permute(0, 2, 1)
    return decode


@torch.no_grad()
def zero_shot(weights: str, data: str, imgsz: int) -> dict:
    checkpoint = read_pickled_checkpoint(weights)
    model = import_checkpoint(weights).model.eval()
    detect = model.model[-1]
    features = {}
    hook = detect.register_forward_pre_hook(lambda module, inputs: features.update(x=list(inputs[0])))
    dataset = prepare_dataset(data)
    wanted = _names(dataset)
    decode = anchor_head(checkpoint.state, checkpoint.names, wanted)
    loader, validators = detection_validators(dataset, dict(enumerate(wanted)), ["zero-shot"], imgsz)
    validator = validators["zero-shot"]
    try:
        for raw in loader:
            batch = validator.preprocess(raw)
            model(batch["img"])
            validator.update_metrics(validator.postprocess(decode(features["x"], detect.stride)), batch)
    finally:
        hook.remove()
    return _scores(validator)


@torch.no_grad()
def as_taught(weights: str, data: str, imgsz: int) -> dict:
    """The same, through spikeyolo.quantize.anchor_teacher: the targets `train --teacher` gives the anchor-free
    student (the best anchor per cell, box sides as DFL distributions) decoded as the student decodes."""
    from spikeyolo.quantize.anchor_teacher import AnchorHeadTeacher

    dataset = prepare_dataset(data)
    wanted = _names(dataset)
    teacher = AnchorHeadTeacher(weights, wanted).eval()
    loader, validators = detection_validators(dataset, dict(enumerate(wanted)), ["taught"], imgsz)
    validator = validators["taught"]
    for raw in loader:
        batch = validator.preprocess(raw)
        validator.update_metrics(validator.postprocess(teacher.decode(teacher(batch["img"]))), batch)
    return _scores(validator)


def _names(dataset) -> list[str]:
    import yaml

    names = yaml.safe_load(dataset.read_text())["names"]
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


def _scores(validator) -> dict:
    stats = validator.get_stats()
    return {"map50": stats["metrics/mAP50(B)"], "map50_95": stats["metrics/mAP50-95(B)"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="../shared/weights/yolov5n-v6.1-coco.pt")
    parser.add_argument("--data", default="../shared/datasets/oi5")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    args = parser.parse_args()
    for imgsz in args.imgsz:
        for label, measure in (("zero-shot, YOLOv5's decode", zero_shot), ("as train --teacher hands it on", as_taught)):
            result = measure(args.weights, args.data, imgsz)
            print(f"{args.weights} on {args.data} val at {imgsz} px, {label}: mAP50 {result['map50']:.3f}  "
                  f"mAP50-95 {result['map50_95']:.3f}")


if __name__ == "__main__":
    main()
