"""Self-distillation: a detector's QCFS (spiking-ready) twin taught by the detector itself on unlabelled photos.

The student starts as the teacher with every activation swapped for QCFS (λ calibrated on photos); it learns to
give the teacher's outputs on augmented photos (``spikeyolo.data.augment``), so every class the teacher knows is
kept, with no labels and whatever classes the photos show. Loss per batch:
  features  the outputs of the backbone's and neck's stages (``FEATURE_LAYERS``) against the teacher's, squared
            error over the teacher's mean square, averaged over stages (× ``feature_weight``);
  head      (YOLOv5's anchor head) objectness BCE against the teacher's probability at every anchor (levels
            weighted 4 : 1 : 0.4 as YOLOv5 balances them), and, weighted by the teacher's objectness, class BCE
            against its class probabilities and the squared error of the box's four sigmoid outputs (× BOX_GAIN).
Adam with a cosine decay; resumable: ``run`` writes the student, the optimizer and the losses after every epoch
(``progress.safetensors`` in the run's folder) and continues from there when called again with equal settings.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spikeyolo.anchor_head import AnchorDetect, head_loss
from spikeyolo.checkpoint import read_metadata, read_tensors, write_safetensors
from spikeyolo.optimizer_state import adam_tensors, checked_steps, restore_adam
from spikeyolo.data.augment import augmented_batch, photo_files, read_photos
from spikeyolo.quantize.checkpoint import load_detector, save_detector
from spikeyolo.quantize.swap import calibrate_thresholds, quantize_model
from spikeyolo.tune.calibrate import LayerOutputs

PROGRESS_FORMAT = "spikeyolo-selfdistill-progress/1"
FEATURE_LAYERS = tuple(f"model.{i}" for i in (2, 4, 6, 8, 9, 13, 17, 20, 23))  # C3 blocks, SPPF, the neck's outputs
CALIBRATION_IMAGES = 32
WARMUP_STEPS = 100  # the learning rate rises linearly over these (at most a twentieth of the run)


@dataclass(frozen=True)
class SelfDistillSettings:
    """Everything that decides the result: a run continues only with equal settings (``epochs`` may grow: the
    cosine decay then stretches over the longer run from where it is)."""
    teacher: str
    photos: tuple[str, ...]
    levels: int = 8
    epochs: int = 40
    imgsz: int = 320
    batch: int = 16
    lr: float = 5e-4
    feature_weight: float = 1.0
    percentile: float = 99.0  # λ's start: this percentile of each layer's input on photos
    seed: int = 0
    init: str | None = None  # a student of this teacher to start from (spikeyolo QCFS weights) instead of the teacher
    mixup: float = 0.0  # the share of training samples blended with a second (spikeyolo.data.augment.mixed)


@dataclass
class Progress:
    epochs_done: int = 0
    of_epochs: int | None = None  # the run's length when the file was written (more --epochs extend a run)
    losses: list = field(default_factory=list)  # per epoch: {"loss", "features", "objectness", "classes", "boxes"}
    seconds: float = 0.0
    started_from: dict | None = None  # the earlier student's record (--init), kept for the resumed run's weights


def feature_loss(student: dict, teacher: dict) -> torch.Tensor:
    terms = [((student[i].float() - teacher[i].float()) ** 2).mean() / (teacher[i].float() ** 2).mean().clamp_min(1e-6)
             for i in teacher]
    return torch.stack(terms).mean()


def load_teacher(path: str | Path) -> nn.Module:
    """A YOLOv5 v6.x .pt (read without unpickling, its anchor head carried) or a spikeyolo ANN with an anchor head."""
    from spikeyolo.importing import import_checkpoint, import_weights

    model = import_checkpoint(path, anchor_head=True).model if Path(path).suffix != ".safetensors" \
        else import_weights(path).model
    if not isinstance(model.model[-1], AnchorDetect):
        raise ValueError(f"{path}: self-distillation teaches from a YOLOv5 anchor head; this model has none")
    return model.float().eval()


def make_student(teacher: nn.Module, levels: int, calibration: torch.Tensor | None = None,
                 percentile: float = 99.0) -> nn.Module:
    """The teacher with every activation swapped for QCFS; λ calibrated on ``calibration`` when given."""
    student = copy.deepcopy(teacher)
    quantize_model(student, levels)
    if calibration is not None:
        calibrate_thresholds(student, calibration, percentile)
    return student


def start_from(student: nn.Module, path: str | Path) -> dict:
    """Load an earlier student of the same teacher (QCFS weights, e.g. a shipped one; read by the one checkpoint
    loader) into ``student``; returns its distillation record and its L. Its λ thresholds carry over to a student of
    other levels (re-quantized: the run then teaches the new L). One ValueError naming the file when it is not such a
    student."""
    earlier, meta = load_detector(path)
    try:
        student.load_state_dict(earlier.state_dict(), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path} is not a student of this teacher ({str(err)[:120]}): pass weights that "
                         "`spikeyolo distill` made from it") from None
    return {"weights": Path(path).name, "levels": meta["quantization"].get("levels"),
            "distillation": meta.get("distillation")}


class SelfDistiller:
    """The student, its optimizer and one step at a time."""

    def __init__(self, teacher: nn.Module, student: nn.Module, settings: SelfDistillSettings, total_steps: int):
        self.teacher, self.student, self.settings = teacher.eval(), student, settings
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.parameters = [p for p in student.parameters() if p.is_floating_point()]
        self.optimizer = torch.optim.Adam(self.parameters, lr=settings.lr)
        self.total_steps, self.steps_done = max(total_steps, 1), 0

    def losses(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad(), LayerOutputs(self.teacher, FEATURE_LAYERS) as taught:
            _, teacher_raw = self.teacher(images)
        with LayerOutputs(self.student, FEATURE_LAYERS) as learnt:
            student_raw = self.student.train()(images)
        parts = head_loss(student_raw, teacher_raw)
        parts["features"] = self.settings.feature_weight * feature_loss(learnt.outputs, taught.outputs)
        parts["loss"] = sum(parts.values())
        return parts

    def step(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step; the loss terms come back as detached tensors (read them once an epoch: no host sync
        per step)."""
        parts = self.losses(images)
        self.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        warmup = min(1.0, (self.steps_done + 1) / max(1, min(WARMUP_STEPS, self.total_steps // 20)))
        cosine = 0.5 * (1 + math.cos(math.pi * min(self.steps_done / self.total_steps, 1.0)))
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.lr * warmup * (0.02 + 0.98 * cosine)
        self.optimizer.step()
        self.steps_done += 1
        return {k: v.detach() for k, v in parts.items()}

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"student.{k}": v for k, v in self.student.state_dict().items()}
        out["steps_done"] = torch.tensor(self.steps_done)
        out.update(adam_tensors(self.optimizer))
        return out

    def load_state(self, saved: dict[str, torch.Tensor], path: Path) -> None:
        """Continue from ``state()``'s tensors, each checked against this run's first (one ValueError naming the file)."""
        try:
            self.student.load_state_dict({k[8:]: v for k, v in saved.items() if k.startswith("student.")})
            restore_adam(self.optimizer, saved)
            self.steps_done = checked_steps(saved, self.total_steps)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{path} does not fit this run ({str(err)[:120]}): delete it to start over") from None


def _load_progress(path: Path, settings: SelfDistillSettings) -> tuple[Progress, dict] | None:
    if not path.is_file():
        return None
    meta = read_metadata(path, PROGRESS_FORMAT)
    defaults = json.loads(json.dumps(asdict(SelfDistillSettings(settings.teacher, settings.photos))))
    saved = {key: value for key, value in (meta.get("settings") or {}).items()}
    saved = {**{key: defaults[key] for key in defaults.keys() - saved.keys()}, **saved}  # a later setting: its default
    asked = json.loads(json.dumps(asdict(settings)))
    if {**saved, "epochs": None} != {**asked, "epochs": None}:
        raise ValueError(f"{path} is the progress of a run with other settings: run with the same settings (more "
                         "--epochs may extend it) to continue it, or choose another output folder")
    record = meta.get("progress") or {}
    try:
        progress = Progress(**record)
    except TypeError:
        progress = None
    number = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0)
    if progress is not None and isinstance(progress.epochs_done, int) and progress.epochs_done > settings.epochs:
        raise ValueError(f"{path}: {progress.epochs_done} epochs already done, more than --epochs {settings.epochs}: "
                         "give at least as many to continue it")
    if progress is None or not (isinstance(progress.epochs_done, int) and 0 <= progress.epochs_done
                                and number(progress.seconds) and isinstance(progress.losses, list)
                                and len(progress.losses) == progress.epochs_done
                                and isinstance(progress.started_from, (dict, type(None)))):
        raise ValueError(f"{path}: its progress record is damaged: delete it to start over")
    return progress, read_tensors(path)


def self_distill(settings: SelfDistillSettings, out: str | Path, device: str | torch.device = "cpu", log=print) -> Path:
    """Run (or continue) the self-distillation into folder ``out`` on ``device``; returns the student's weights
    (``out/weights/last.safetensors``, rewritten after every epoch)."""
    device = torch.device(device)
    out = Path(out)
    files = photo_files(list(settings.photos))
    photos = read_photos(files, settings.imgsz)
    if len(photos) < settings.batch:
        raise ValueError(f"{len(photos)} readable photos in {', '.join(settings.photos)}: need at least a batch "
                         f"({settings.batch})")
    if len(photos) < len(files):
        log(f"{len(files) - len(photos)} of {len(files)} photos skipped: they do not decode fully")
    torch.manual_seed(settings.seed)
    teacher = load_teacher(settings.teacher).to(device)
    student = make_student(teacher, settings.levels)
    steps = math.ceil(len(photos) / settings.batch)
    distiller = SelfDistiller(teacher, student, settings, steps * settings.epochs)
    progress_file, weights = out / "progress.safetensors", out / "weights" / "last.safetensors"
    progress = Progress(of_epochs=settings.epochs)
    resumed = _load_progress(progress_file, settings)
    if resumed:  # the student, its optimizer and the record of where it started come from the progress file
        progress, tensors = resumed
        distiller.load_state({k: v.to(device) for k, v in tensors.items()}, progress_file)
        log(f"continuing {progress_file}: {progress.epochs_done} of {settings.epochs} epochs done"
            + (f" (extended from {progress.of_epochs})" if progress.of_epochs not in (None, settings.epochs) else ""))
        progress.of_epochs = settings.epochs
    elif settings.init:
        progress.started_from = start_from(student, settings.init)
    else:
        calibrate_thresholds(student, augmented_batch(photos, settings.imgsz, CALIBRATION_IMAGES,
                                                      np.random.default_rng(settings.seed)).to(device),
                             settings.percentile)
    log(f"self-distillation: {len(photos)} photos, {steps} batches of {settings.batch} an epoch, "
        f"QCFS L = {settings.levels}, teacher {settings.teacher}")
    ran = progress.epochs_done < settings.epochs
    for epoch in range(progress.epochs_done, settings.epochs):
        start, rng, sums = time.time(), np.random.default_rng([settings.seed, epoch]), {}
        for _ in range(steps):
            images = augmented_batch(photos, settings.imgsz, settings.batch, rng, settings.mixup)
            images = images.to(device, non_blocking=True)
            for key, value in distiller.step(images).items():
                sums[key] = sums.get(key, 0.0) + value.double() / steps
        sums = {key: float(value) for key, value in sums.items()}
        progress.epochs_done, progress.seconds = epoch + 1, progress.seconds + time.time() - start
        progress.losses.append({k: round(v, 6) for k, v in sums.items()})
        record = _record(settings, progress, len(photos))
        _save(distiller, settings, progress, progress_file, weights, record)
        log(f"epoch {epoch + 1}/{settings.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in sums.items())
            + f" ({time.time() - start:.0f} s)")
    if not ran:  # a finished run called again: its weights written from its progress file
        save_detector(distiller.student, weights, imgsz=settings.imgsz,
                      distillation=_record(settings, progress, len(photos)))
    return weights


def _record(settings, progress: Progress, photos: int) -> dict:
    """What the weights' metadata says of their making; a run started from earlier weights carries their record."""
    record = {"method": "self-distillation into QCFS (features + anchor head, no labels)",
              "teacher": Path(settings.teacher).name, "photos": photos, "epochs": progress.epochs_done,
              "of_epochs": settings.epochs, "seconds": round(progress.seconds, 1), "imgsz": settings.imgsz,
              "lr": settings.lr, "mixup": settings.mixup}
    if progress.started_from:
        record["started_from"] = progress.started_from
    return record


def _save(distiller: SelfDistiller, settings, progress: Progress, progress_file: Path, weights: Path,
          record: dict) -> None:
    write_safetensors(distiller.state(), progress_file, {"format": PROGRESS_FORMAT, "settings": asdict(settings),
                                                         "progress": asdict(progress)})
    save_detector(distiller.student, weights, imgsz=settings.imgsz, distillation=record)
