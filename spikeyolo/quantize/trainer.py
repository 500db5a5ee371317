"""Training: the ultralytics detection trainer, with QCFS activations swapped into every Conv block."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from spikeyolo.checkpoint import save_detector
from spikeyolo.data import prepare_dataset
from spikeyolo.quantize.qcfs import QCFS
from spikeyolo.quantize.swap import calibrate_thresholds, quantize_model
from spikeyolo.ultra import DetectionTrainer, build_detection_model, load_checkpoint


class QCFSTrainer(DetectionTrainer):
    """DetectionTrainer whose model has one QCFS module per layer (``levels`` None: a plain ANN)."""

    def __init__(self, levels: int | None = None, threshold: float = 4.0, overrides: dict | None = None,
                 _callbacks=None):
        self.levels, self.init_threshold = levels, threshold
        self.calibrate_lambda = False
        super().__init__(overrides=overrides, _callbacks=_callbacks)

    def get_model(self, cfg=None, weights=None, verbose=True):
        model = build_detection_model(cfg, nc=self.data["nc"], verbose=verbose)
        model = self.set_model_names_for_load(model)
        levels = self.levels or _levels_of(weights)
        if levels:
            quantize_model(model, levels, self.init_threshold)
        if weights:
            model.load(weights)
            # a pretrained non-QCFS model (--from): start λ from its activations, not a constant
            self.calibrate_lambda = bool(levels) and _levels_of(weights) is None
        return model

    def _build_train_pipeline(self):
        super()._build_train_pipeline()
        if self.calibrate_lambda and not self.args.resume:
            batch = next(iter(self.train_loader))
            images = batch["img"].to(self.device).float() / 255
            calibrate_thresholds(self.model, images)
            self.model.train()


def _levels_of(model) -> int | None:
    """The QCFS levels a model already has (a resumed or QCFS-pretrained one), else None."""
    if not isinstance(model, torch.nn.Module):
        return None
    found = {m.levels for m in model.modules() if isinstance(m, QCFS)}
    return found.pop() if found else None


@dataclass
class TrainResult:
    """Where training left its checkpoint, and the final validation metrics."""
    checkpoint: Path
    run_dir: Path
    map50: float
    map50_95: float


def train(data: str | Path, model: str | Path, levels: int | None = 4, epochs: int = 100, imgsz: int = 640,
          device: str = "cpu", batch: int = 16, resume: str | bool = False, threshold: float = 4.0,
          **overrides) -> TrainResult:
    """Train a detector (QCFS if ``levels``) and write ``best.safetensors`` beside ultralytics' own files.

    ``model`` is a model yaml, or a user's ultralytics ``.pt`` (``--from``) to fine-tune with QCFS.
    """
    args = {"data": str(prepare_dataset(data)), "model": str(model), "epochs": epochs, "imgsz": imgsz,
            "device": device, "batch": batch, "plots": False, **overrides}
    if resume:
        args.update(resume=str(resume) if resume is not True else True)
    trainer = QCFSTrainer(levels=levels, threshold=threshold, overrides=args)
    trainer.train()
    best = trainer.best if trainer.best.exists() else trainer.last
    net, _ = load_checkpoint(best)
    results = trainer.metrics or {}
    map50 = float(results.get("metrics/mAP50(B)", 0.0))
    map50_95 = float(results.get("metrics/mAP50-95(B)", 0.0))
    out = save_detector(net, Path(trainer.wdir) / "best.safetensors", imgsz=imgsz, data=str(data),
                        epochs=epochs, metrics={"map50": map50, "map50_95": map50_95})
    return TrainResult(out, Path(trainer.save_dir), map50, map50_95)
