"""ANN and SNN accuracy side by side, the SNN simulated once to the largest T and read at every T."""
from __future__ import annotations


from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from spikeyolo.device import timed, torch_device

from spikeyolo.engine.runner import SpikingDetector
from spikeyolo.detections import Detections
from spikeyolo.ultra import boxes_to_original, detection_validators


@dataclass
class Accuracy:
    """Detection accuracy of one model (or one timestep): ultralytics' metrics, and the dataset's own."""
    map50: float
    map50_95: float
    per_class_map50: dict[str, float] = field(default_factory=dict)
    dataset_metric: dict | None = None


def _accuracy(validator, evaluator=None, detections=None) -> Accuracy:
    stats = validator.get_stats()
    box = validator.metrics.box
    names = validator.names
    per_class = {names[int(c)]: float(ap) for c, ap in zip(box.ap_class_index, box.ap50)}
    official = {evaluator.name: evaluator.evaluate(detections)} if evaluator is not None else None
    return Accuracy(float(stats["metrics/mAP50(B)"]), float(stats["metrics/mAP50-95(B)"]), per_class, official)


def _collect(store: dict, evaluator, predictions: list[dict], batch: dict) -> None:
    """Keep each image's detections in original pixels for the dataset evaluator."""
    for i, pred in enumerate(predictions):
        boxes = boxes_to_original(pred["bboxes"], batch, i)
        store[evaluator.image_key(batch["im_file"][i])] = Detections(
            boxes.cpu().numpy(), pred["conf"].cpu().numpy(), pred["cls"].cpu().numpy().astype(int))


def _update(validator, out: torch.Tensor, batch: dict, evaluator, store: dict | None) -> None:
    predictions = validator.postprocess(out)
    if evaluator is not None:
        _collect(store, evaluator, predictions, batch)
    validator.update_metrics(predictions, batch)


@torch.no_grad()
def evaluate_anytime(ann: nn.Module | None, snn: SpikingDetector | None, data, timesteps: list[int],
                     imgsz: int = 640, batch: int = 16, device: str = "cpu", split: str = "val",
                     on_batch=None, evaluator=None, chunk: int | None = None, max_images: int | None = None,
                     class_rows: list[int] | None = None, **overrides) -> dict:
    """mAP of the ANN and of the SNN at each T in ``timesteps`` from one SNN run to max(T).

    ``on_batch(images, snn)`` is called after each SNN batch (the cost meters read neuron records there).
    ``evaluator`` (VOC or COCO, see spikeyolo.eval.evaluators) adds the dataset's own metric. ``class_rows``: the
    model's class index of each dataset class, when the dataset's classes are some of the model's (its other rows
    are left out before NMS, as `detect --classes` does).
    ``chunk`` runs the steps in slices of that many (state carried over) to bound memory. ``max_images``: the first
    this many images only, exactly (a quick look: the batch becomes the largest divisor of it up to ``batch``; the
    dataset metric then covers those images).
    Returns {"ann": Accuracy | None, "snn": {T: Accuracy}, "detections": {key: {image: Detections}},
    "seconds": {"ann": s, "snn": s, "images": n}} (the networks' wall time, synchronized on CUDA).
    """
    names = (snn.names if snn is not None else ann.names)
    if class_rows is not None:  # the dataset's classes are some of the model's: its rows, in the dataset's order
        rows = torch.tensor([0, 1, 2, 3] + [4 + row for row in class_rows], device=torch_device(device))
        names = {i: names[row] for i, row in enumerate(class_rows)}
    keys = (["ann"] if ann is not None else []) + (sorted(set(timesteps)) if snn is not None else [])
    if max_images is not None:
        batch = max(size for size in range(1, min(batch, max_images) + 1) if max_images % size == 0)
    loader, validators = detection_validators(data, names, keys, imgsz, batch, device, split, **overrides)
    horizon = max(timesteps) if snn is not None else 0
    detections = {key: {} for key in keys}
    seconds = {"ann": 0.0, "snn": 0.0, "images": 0}
    total = min(len(loader.dataset), max_images or len(loader.dataset))
    bar = tqdm(total=total, desc=f"{split} split, ANN and SNN to T={horizon}" if ann is not None and snn is not None
               else f"{split} split, SNN to T={horizon}" if snn is not None else f"{split} split, ANN", unit="image")
    for raw in loader:
        if max_images is not None and seconds["images"] >= max_images:
            break
        batch_dict = validators[keys[0]].preprocess(raw)
        images = batch_dict["img"]
        seconds["images"] += images.shape[0]
        bar.update(images.shape[0])
        if ann is not None:
            with timed(seconds, "ann", images.device):
                out = ann(images)
            out = out[0] if isinstance(out, (tuple, list)) else out
            out = out if class_rows is None else out.index_select(1, rows)
            _update(validators["ann"], out, batch_dict, evaluator, detections["ann"])
        if snn is not None:
            with timed(seconds, "snn", images.device):
                per_step = snn(images, horizon, chunk=chunk)
            per_step = per_step if class_rows is None else per_step.index_select(2, rows)
            for t in keys[1 if ann is not None else 0:]:
                _update(validators[t], per_step[t - 1], batch_dict, evaluator, detections[t])
            if on_batch is not None:
                on_batch(images, snn)
    bar.close()
    if evaluator is not None and max_images is not None:
        evaluator.restrict(next(iter(detections.values())).keys())
    results = {key: _accuracy(validators[key], evaluator, detections[key]) for key in keys}
    return {"ann": results.get("ann"), "snn": {t: results[t] for t in keys if t != "ann"}, "detections": detections,
            "seconds": seconds}

