"""Training with a teacher (``spikeyolo train --teacher``): knowledge distillation on top of the labels' loss.

Swapping a pretrained network's activations for QCFS (or SiLU for ReLU) throws away much of what it knew; with a
few hundred labelled images it is hard to win back. A teacher, typically the same network before the swap (the
SiLU model fine-tuned on the same data), says at every anchor what the student should output, on every augmented
image the trainer makes (Hinton et al. 2015; for quantization-aware training, Mishra & Marr 2018, Polino et al.
2018). The loss is ultralytics' detection loss on the labels plus ``gain`` × the distillation loss of
``spikeyolo tune`` in its "objects" balance (class BCE against the teacher's probabilities summed and box-side KL
weighted by its confidence, both per unit of its total confidence, as ultralytics normalizes its own), and with
``feature_weight`` the Detect head's inputs (the neck's outputs) pulled towards the teacher's (squared error
relative to the teacher's mean square, weighted by the teacher's confidence at each place). Both are scaled by the
batch size, as ultralytics scales its loss.
"""
from __future__ import annotations

from pathlib import Path

import torch

from spikeyolo.tune.distill import distillation_loss
from spikeyolo.ultra import box_bins


def feature_imitation(student: list[torch.Tensor], teacher: list[torch.Tensor],
                      confidence: list[torch.Tensor]) -> torch.Tensor:
    """Mean over levels of the confidence-weighted squared error of the neck's outputs, relative to the teacher's
    mean square at that level (every level counts alike whatever its scale); ``confidence`` [B, H·W] per level."""
    terms = []
    for s, t, weight in zip(student, teacher, confidence):
        error = ((s - t) ** 2).mean(1).flatten(1)  # [B, H·W]
        terms.append((error * weight).sum() / (weight.sum().clamp_min(1e-6) * (t ** 2).mean().clamp_min(1e-6)))
    return torch.stack(terms).mean()


class DistilledLoss:
    """The labels' detection loss (``criterion``: ultralytics') plus distillation towards ``teacher``; the loss
    items gain ``kd_loss`` (the distillation term per image, before ``gain``)."""

    def __init__(self, criterion, teacher: torch.nn.Module, gain: float = 1.0, feature_weight: float = 0.0):
        self.criterion, self.teacher = criterion, teacher.eval()
        self.gain, self.feature_weight = gain, feature_weight
        self.bins = criterion.reg_max
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)

    def __deepcopy__(self, memo):  # ultralytics deep-copies the model (criterion included) to save it, then drops
        return self                # the criterion: no copy of the teacher is needed

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, items = self.criterion(preds, batch)
        student = self.criterion.parse_output(preds)
        images = batch["img"]
        with torch.no_grad():
            teacher = self.criterion.parse_output(self.teacher(images.to(next(self.teacher.parameters()).dtype)))
        kd = distillation_loss({k: student[k].float() for k in ("boxes", "scores")},
                               {k: teacher[k].float() for k in ("boxes", "scores")}, self.bins, "objects")
        if self.feature_weight > 0:
            confidence = teacher["scores"].float().sigmoid().amax(1)  # [B, A], anchors level by level
            sizes = [f.shape[-2] * f.shape[-1] for f in teacher["feats"]]
            kd = kd + self.feature_weight * feature_imitation(
                [f.float() for f in student["feats"]], [f.float() for f in teacher["feats"]],
                list(confidence.split(sizes, 1)))
        term = (self.gain * kd * images.shape[0]).reshape(1).to(loss.dtype)
        return torch.cat([loss.reshape(-1), term]), {**items, "kd_loss": kd.detach()}


def check_teacher(teacher: torch.nn.Module, student: torch.nn.Module, names: list[str], path: str | Path,
                  features: bool) -> None:
    """One clear line when the teacher cannot teach this student: other classes, head or (``features``) widths."""
    theirs = [teacher.names[i] for i in sorted(teacher.names)]
    if theirs != list(names):
        raise ValueError(f"--teacher {path} detects {theirs}, the data {list(names)}: train the teacher on the same "
                         "classes (in the same order)")
    strides, own = _strides(teacher), _strides(student)
    if strides != own or _bins(teacher) not in (None, box_bins(student)):
        raise ValueError(f"--teacher {path}: its Detect head (strides {strides}, {_bins(teacher)} box bins) differs "
                         f"from the student's ({own}, {box_bins(student)})")
    if features and _widths(teacher) != _widths(student):
        raise ValueError(f"--teacher {path}: its neck's widths {_widths(teacher)} differ from the student's "
                         f"{_widths(student)}; drop --teacher-features")


def _detect(model):
    """The Detect head of a detector, or of an AnchorHeadTeacher's imported body (same strides and neck)."""
    return getattr(model, "body", model).model[-1]


def _strides(model) -> list[float]:
    return _detect(model).stride.tolist()


def _bins(model) -> int | None:
    return None if hasattr(model, "body") else box_bins(model)  # an AnchorHeadTeacher adopts the student's bins


def _widths(model) -> list[int]:
    """The neck's output widths (the Detect head's input channels)."""
    return [branch[0].conv.in_channels for branch in _detect(model).cv2]
