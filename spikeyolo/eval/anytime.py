"""ANN and SNN accuracy side by side, the SNN simulated once to the largest T and read at every T."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from spikeyolo.engine.runner import SpikingDetector
from spikeyolo.ultra import detection_validators


@dataclass
class Accuracy:
    """Detection accuracy of one model (or one timestep)."""
    map50: float
    map50_95: float
    per_class_map50: dict[str, float] = field(default_factory=dict)


def _accuracy(validator) -> Accuracy:
    stats = validator.get_stats()
    box = validator.metrics.box
    names = validator.names
    per_class = {names[int(c)]: float(ap) for c, ap in zip(box.ap_class_index, box.ap50)}
    return Accuracy(float(stats["metrics/mAP50(B)"]), float(stats["metrics/mAP50-95(B)"]), per_class)


@torch.no_grad()
def evaluate_anytime(ann: nn.Module | None, snn: SpikingDetector | None, data, timesteps: list[int],
                     imgsz: int = 640, batch: int = 16, device: str = "cpu", split: str = "val",
                     on_batch=None, **overrides) -> dict:
    """mAP of the ANN and of the SNN at each T in ``timesteps`` from one SNN run to max(T).

    ``on_batch(images, snn)`` is called after each SNN batch (the cost meters read neuron records there).
    Returns {"ann": Accuracy | None, "snn": {T: Accuracy}}.
    """
    names = (snn.names if snn is not None else ann.names)
    keys = (["ann"] if ann is not None else []) + (sorted(set(timesteps)) if snn is not None else [])
    loader, validators = detection_validators(data, names, keys, imgsz, batch, device, split, **overrides)
    horizon = max(timesteps) if snn is not None else 0
    for raw in tqdm(loader, desc=f"val {split} (SNN to T={horizon})" if snn else f"val {split}", unit="batch"):
        batch_dict = validators[keys[0]].preprocess(raw)
        images = batch_dict["img"]
        if ann is not None:
            out = ann(images)
            out = out[0] if isinstance(out, (tuple, list)) else out
            validators["ann"].update_metrics(validators["ann"].postprocess(out), batch_dict)
        if snn is not None:
            per_step = snn(images, horizon)
            for t in keys[1 if ann is not None else 0:]:
                validators[t].update_metrics(validators[t].postprocess(per_step[t - 1]), batch_dict)
            if on_batch is not None:
                on_batch(images, snn)
    return {"ann": _accuracy(validators["ann"]) if ann is not None else None,
            "snn": {t: _accuracy(validators[t]) for t in keys if t != "ann"}}
