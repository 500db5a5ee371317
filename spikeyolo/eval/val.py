"""`spikeyolo val` as a Python API: ANN and SNN accuracy at every T, and the SNN cost, in one run."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import yaml

from spikeyolo.convert.load import load_model, read_weights
from spikeyolo.data import DatasetError, prepare_dataset
from spikeyolo.data.images import dataset_names, image_batches, split_images
from spikeyolo.device import torch_device
from spikeyolo.engine import default_backend
from spikeyolo.eval.anytime import evaluate_anytime
from spikeyolo.eval.cost import CostMeter
from spikeyolo.eval.counting import spiking_depth
from spikeyolo.eval.evaluators import COCOEvaluator, dataset_evaluator
from spikeyolo.eval.report import build_report
from spikeyolo.limits import image_size

from spikeyolo.defaults import VAL_TIMESTEPS as DEFAULT_TIMESTEPS
LOGGER = logging.getLogger("spikeyolo.val")


def check_classes(model_names: list[str], data_yaml: Path, data: str | Path, weights: str | Path) -> list[int] | None:
    """How the model's classes meet the dataset's: None when they are the same list (or as many, named otherwise:
    matched by index, with a warning); the model's index of each dataset class when the dataset's classes are some
    or all of the model's in another order, matched by name (e.g. 5 of COCO's 80: the evaluation reads those rows of the head); a
    DatasetError naming the classes the model lacks otherwise."""
    names = dataset_names(data_yaml)
    model = [str(name) for name in model_names]
    if [n.lower() for n in names] == [n.lower() for n in model]:
        return None
    index = {name.lower(): i for i, name in enumerate(model)}
    if len(names) <= len(model) and all(name.lower() in index for name in names):  # some, or all in another order
        LOGGER.info(f"{data}'s {len(names)} classes matched by name among the {len(model)} of {weights}: "
                    + ", ".join(f"{name} → {index[name.lower()]}" for name in names[:10])
                    + (", …" if len(names) > 10 else ""))
        return [index[name.lower()] for name in names]
    if len(names) != len(model):
        lacking = [name for name in names if name.lower() not in index]
        shown = ", ".join(model[:5]) + (", …" if len(model) > 5 else "")
        raise DatasetError(f"{weights} detects {len(model)} classes ({shown}) but {data} has {len(names)}"
                           + (f", of which {', '.join(lacking[:5])}{' …' if len(lacking) > 5 else ''} are not "
                              "among the model's" if lacking else "")
                           + ": evaluate on a dataset whose classes the model has (matched by name)")
    LOGGER.warning(f"class names differ between {weights} ({model}) and {data} ({names}): "
                   f"classes are matched by index")
    return None


def _split_names(data_yaml: Path) -> dict[str, str]:
    """Prepared role → the dataset's own name of it (e.g. val → test for a VOC folder)."""
    config = yaml.safe_load(Path(data_yaml).read_text()) or {}
    roles = [role for role in ("train", "val", "test") if config.get(role)]
    source = Path(data_yaml).parent / "source.json"
    summary = json.loads(source.read_text()).get("summary", {}) if source.is_file() else {}
    return {role: summary.get(role, {}).get("split", role) for role in roles}


def dataset_split_name(data_yaml: Path, role: str) -> str:
    """The dataset's own name of a prepared role (e.g. VOC2007/test for val), for the report."""
    return _split_names(data_yaml).get(role, role)


def split_role(data_yaml: Path, asked: str, data: str | Path) -> str:
    """The role ``--split`` names: a role (train, val, test) or the dataset's own name of one (a VOC folder's
    ``test`` is its val role); a DatasetError naming the roles and their names otherwise."""
    names = _split_names(data_yaml)
    if asked in names:
        return asked
    for role, name in names.items():
        if asked == name or asked in name.split("+"):
            LOGGER.info(f"split {asked!r} of {data} is its {role} role")
            return role
    have = ", ".join(f"{role} ({name})" if name != role else role for role, name in names.items())
    raise DatasetError(f"{data} has no split {asked!r}: --split takes one of {have} (a role, or the dataset's own "
                       "name in brackets); --train-split / --val-split choose which of the dataset's splits fill them")


def latency(seconds: dict, counting: float, timesteps: list[int], device) -> dict:
    """Steps to the first detections (1: the head decodes after every step) and to each reported T, and the wall
    time per image of the ANN and of the SNN run to the largest T on this device (the cost meter's counting,
    timed on the host, subtracted: exact on the CPU, approximate on a GPU)."""
    images = max(seconds["images"], 1)
    return {"first_output_step": 1, "steps_to_reported_accuracy": list(timesteps), "device": str(device),
            "ann_ms_per_image": 1e3 * seconds["ann"] / images if seconds["ann"] else None,
            f"snn_ms_per_image_to_T{max(timesteps)}": 1e3 * max(seconds["snn"] - counting, 0.0) / images}


def checked_timesteps(timesteps) -> list[int]:
    """The distinct T asked for, sorted (a ValueError unless all are positive)."""
    timesteps = sorted(set(int(t) for t in timesteps))
    if not timesteps or timesteps[0] < 1:
        raise ValueError(f"timesteps must be positive integers, got {timesteps}")
    return timesteps


def load_for_split(weights: str | Path, data: str | Path, split: str, imgsz: int | None, device: torch.device,
                   mode: str | None, percentile: float, calib_images: int, ann: bool, burst: int | None, snm: bool,
                   train_split: str | None, val_split: str | None, command: str = "val",
                   ann_weights: str | Path | None = None):
    """(the networks of ``weights``, the prepared dataset's yaml, the role of ``split``) once the weights, the
    dataset, the split and the
    classes are known to fit, each checked before anything heavier (one clear error otherwise); channel / layer
    modes calibrate on the train split's images."""
    if imgsz is not None:
        image_size(imgsz, command)
    weights_file = read_weights(weights)  # a bad weights file fails before the dataset is prepared
    data_yaml = prepare_dataset(data, train_split=train_split, val_split=val_split)
    split = split_role(data_yaml, split, data)
    split_images(data_yaml, split)  # a role without images is one DatasetError too
    class_rows = check_classes(weights_file.names, data_yaml, data, weights)  # before any conversion

    def calibration(size: int) -> list:  # channel / layer modes: images of the train split
        return list(image_batches(split_images(data_yaml, "train")[:calib_images], size))

    loaded = load_model(weights_file, device, ann=ann, mode=mode, burst=burst, snm=snm, calibration=calibration,
                        percentile=percentile, imgsz=imgsz, backend=default_backend(device),  # fused on CUDA
                        ann_weights=ann_weights)
    return loaded, data_yaml, split, class_rows


def validate(weights: str | Path, data: str | Path, timesteps=DEFAULT_TIMESTEPS, split: str = "val",
             imgsz: int | None = None, batch: int = 16, device: str = "auto", mode: str | None = None,
             percentile: float = 99.9, calib_images: int = 64, ann: bool = True, cost: bool = True,
             burst: int | None = None, chunk: int | None = None, snm: bool = False, precision: str = "fp32",
             train_split: str | None = None, val_split: str | None = None, threshold_scale: float = 1.0,
             compile: bool = False, ann_weights: str | Path | None = None, conf: float = 0.001, iou: float = 0.7,
             max_images: int | None = None) -> dict:
    """Evaluate ANN and SNN (simulated once to max T) and return the report dict; ``threshold_scale`` multiplies
    every neuron's θ (the ANN is unchanged); ``compile`` runs the SNN through torch.compile (without the cost meter,
    whose hooks watch the eager forward). ``ann_weights``: the ANN row's checkpoint for an SNN artifact (default:
    its source when beside it). ``conf``/``iou``: NMS before the mAP (ultralytics' val defaults);
    ``max_images``: the first this many images only (a quick look)."""
    if compile and cost:
        raise ValueError("the cost meter watches every layer of the eager forward: compile with cost=False")
    device = torch_device(device)  # 'auto', '0', … as torch reads them
    timesteps = checked_timesteps(timesteps)
    loaded, data_yaml, split, class_rows = load_for_split(weights, data, split, imgsz, device, mode, percentile, calib_images, ann,
                                       burst, snm, train_split, val_split, ann_weights=ann_weights)
    if ann and loaded.ann is None:
        LOGGER.warning(f"no ANN row: {weights} is an SNN artifact whose source checkpoint is not beside it; pass the "
                       "detector checkpoint it came from as the ANN (--ann CHECKPOINT)")
    ann_model, snn = loaded.ann, loaded.snn
    meta = {**loaded.settings, "precision": precision, "threshold_scale": threshold_scale, "compiled": compile}
    snn.set_precision(precision)  # the ANN row stays the float32 reference
    if compile:
        snn.compile()
    for _, neuron in snn.neurons():
        neuron.threshold.mul_(threshold_scale)
    meter = CostMeter(snn, levels=loaded.settings.get("levels")) if cost else None
    evaluator = dataset_evaluator(data_yaml, split)
    try:
        accuracy = evaluate_anytime(ann_model if ann else None, snn, data_yaml, timesteps, meta["imgsz"], batch,
                                    device, split, on_batch=meter.after_batch if meter else None, evaluator=evaluator,
                                    chunk=chunk, max_images=max_images, class_rows=class_rows, conf=conf, iou=iou)
    finally:
        if meter:
            meter.close()
    report_cost = meter.report(timesteps) if meter else None
    report_latency = latency(accuracy["seconds"], meter.graph.seconds if meter else 0.0, timesteps, device)
    report_latency["spiking_layers_on_longest_path"] = spiking_depth(snn, torch.zeros(1, 3, meta["imgsz"],
                                                                                      meta["imgsz"], device=device))
    report = build_report(accuracy, report_cost, str(data), str(weights), {**meta, "split": split, "conf": conf,
                          "iou": iou, "images": accuracy["seconds"]["images"],
                          "latency": report_latency,
                          "dataset_split": dataset_split_name(data_yaml, split),
                          "classes_matched": None if class_rows is None else dict(zip(dataset_names(data_yaml),
                                                                                     class_rows))})
    if isinstance(evaluator, COCOEvaluator):
        report["coco_results"] = {str(key): evaluator.results(found) for key, found in accuracy["detections"].items()}
    return report
