"""Hybrid fine-tuning of a converted detector at its target T (Rathi et al., ICLR 2020), taught by its own ANN.

The converted SNN runs T steps with surrogate gradients (``engine.surrogate``; BPTT through the membranes); its
head's running output after T steps (with ``readouts``: after each of those steps, the losses averaged, so that one
network reads well at several T) is pulled towards the ANN's on the same images (knowledge distillation, no
labels needed): class scores by binary cross-entropy against the ANN's probabilities, box-side distributions by
KL divergence weighted by the ANN's confidence at each anchor (background anchors barely matter to detection)
(``distillation_loss``).
Every convolution's weights and biases are trained; with ``thresholds`` the spiking layers' thresholds θ too, one
per channel (DIET-SNN, Rathi & Roy 2021: at few steps where a neuron fires matters as much as what feeds it; the
membrane's start, v0 = initial_membrane·θ, follows θ). Adam's steps are about lr in size whatever the scale, and θ
(~1–5) is some 30× larger than a weight (~0.05–0.2), so θ's learning rate is lr·THRESHOLD_LR·mean θ₀ of its layer:
each layer's θ moves by about THRESHOLD_LR·lr of itself per step; θ is kept ≥ MIN_THRESHOLD·θ₀. With ``label_gain`` > 0 the
labels join the teacher (hybrid fine-tuning on the detection loss, as Rathi et al. fine-tune on the task's own
loss): ultralytics' detection loss of the SNN's head outputs against the images' labels, × label_gain, is added.
The graph stays as converted.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spikeyolo.engine.runner import SpikingDetector
from spikeyolo.optimizer_state import adam_tensors, checked_steps, restore_adam
from spikeyolo.anchor_head import head_loss as anchor_head_loss
from spikeyolo.tune.calibrate import LayerOutputs, feeding_conv
from spikeyolo.tune.distributed import Ranks, shard_targets
from spikeyolo.ultra import LabelsLoss, box_bins, learnable_parameters, raw_head_outputs

THRESHOLD_LR = 10.0
MIN_THRESHOLD = 0.05


LOSSES = ("anchors", "objects")
BOX_GAIN = 3.0  # box term : class term in the "objects" loss, ultralytics' dfl : cls gains (1.5 : 0.5)


def teacher_confidence(teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """The teacher's summed confidence over a batch's anchors (its best class each; YOLOv5's anchor head: its
    objectness): the loss's normalizer."""
    if "anchors" in teacher:
        return teacher["anchors"][..., 4].float().sigmoid().sum()
    return teacher["scores"].sigmoid().amax(1).sum()


def distillation_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], bins: int,
                      balance: str = "anchors", total: torch.Tensor | None = None, share: float = 1.0) -> torch.Tensor:
    """Class BCE against the teacher's probabilities + confidence-weighted KL of the box-side distributions.

    ``balance`` "anchors" (default): the class term is the mean over every anchor and class; most anchors are
    background, so on BCCD the class term is ~1/30 of the box term's excess over its floor. "objects": the class
    term summed over anchors and classes, both terms divided by the teacher's total confidence (as ultralytics
    normalizes its detection loss by the target scores' sum), the box term × BOX_GAIN: confidences weigh as much as
    boxes. Measured on BCCD (docs/results.md), "objects" is no better (0.749 against 0.760 mAP50 at T = 4).

    Part of a batch split between processes: ``total`` is the teacher's confidence over the whole batch and ``share``
    this part's fraction of its images, so that the parts' losses add up to the whole batch's.

    YOLOv5's anchor head ({'anchors': logits}; ``bins`` None): self-distillation's head loss
    (``spikeyolo.anchor_head.head_loss``: objectness everywhere, classes and boxes where the teacher sees an
    object), every level weighted alike.
    """
    if "anchors" in teacher:
        if total is None:
            total = teacher_confidence(teacher).clamp_min(1.0)
        parts = anchor_head_loss([student["anchors"]], [teacher["anchors"]], (1.0,), total, share)
        return parts["objectness"] + parts["classes"] + parts["boxes"]
    probs = teacher["scores"].sigmoid()
    weight = probs.amax(1)  # [B, A]: how much each anchor is an object to the teacher
    if total is None:
        total = teacher_confidence(teacher).clamp_min(1.0)  # as ultralytics clamps its target scores' sum
    batch, _, anchors = student["boxes"].shape
    log_student = student["boxes"].view(batch, 4, bins, anchors).log_softmax(2)
    log_teacher = teacher["boxes"].view(batch, 4, bins, anchors).log_softmax(2)
    boxes = (log_teacher.exp() * (log_teacher - log_student)).sum(2).mean(1)  # [B, A]: KL per anchor
    boxes = (boxes * weight).sum() / total
    if balance == "anchors":
        return F.binary_cross_entropy_with_logits(student["scores"], probs) * share + boxes
    if balance != "objects":
        raise ValueError(f"unknown distillation loss balance {balance!r}: one of {', '.join(LOSSES)}")
    return F.binary_cross_entropy_with_logits(student["scores"], probs, reduction="sum") / total + BOX_GAIN * boxes


def per_channel_thresholds(snn: SpikingDetector) -> dict[str, torch.Tensor]:
    """Every neuron's θ as one value per output channel (a layer's single θ copied to each; the same network), the
    tensors the neurons now hold, by neuron name."""
    thresholds = {}
    for name, neuron in snn.neurons():
        if neuron.threshold.dim() == 0:
            channels = feeding_conv(snn.net, name).out_channels
            neuron.threshold = neuron.threshold.expand(channels).clone()
        thresholds[name] = neuron.threshold
    return thresholds


def spiking_head(snn: SpikingDetector, images: torch.Tensor, timesteps: int,
                 readouts: tuple[int, ...] | None = None):
    """The head's raw outputs after ``timesteps`` steps, differentiable (one chunk of all T); with ``readouts`` (steps
    counted from 1) a list of them, as read after each of those steps."""
    snn.init_state(images)
    sequence = images.unsqueeze(0).expand(timesteps, *images.shape)
    raw = {key: value.view(timesteps, images.shape[0], *value.shape[1:])
           for key, value in raw_head_outputs(snn.net(sequence)).items()}
    if readouts is None:
        return {key: value[-1] for key, value in raw.items()}
    return [{key: value[step - 1] for key, value in raw.items()} for step in readouts]


def feature_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the squared error between the SNN's rates and the ANN's activations, each relative to the
    ANN activation's mean square (so that every layer counts alike, whatever its scale)."""
    terms = [((student[name] - teacher[name]) ** 2).mean() / (teacher[name] ** 2).mean().clamp_min(1e-6)
             for name in teacher]
    return torch.stack(terms).mean()


class Distiller:
    """One optimizer step at a time: the SNN (student) at T against the ANN (teacher): the head's outputs, and with
    ``feature_weight`` > 0 every spiking layer's rate against its ANN activation too."""

    def __init__(self, snn: SpikingDetector, ann: nn.Module, timesteps: int, lr: float, total_steps: int,
                 sharpness: float = 4.0, feature_weight: float = 0.0, thresholds: bool = False,
                 readouts: tuple[int, ...] | None = None, balance: str = "anchors", label_gain: float = 0.0,
                 ranks: Ranks = Ranks()):
        self.snn, self.ann, self.timesteps, self.balance = snn, ann.eval(), timesteps, balance
        self.ranks = ranks  # several processes: each takes its part of every batch (spikeyolo.tune.distributed)
        self.label_gain = label_gain
        if label_gain > 0 and box_bins(ann) is None:
            raise ValueError("the labels' detection loss is ultralytics' (anchor-free head): tune a model with "
                             "YOLOv5's anchor head with --label-gain 0 (its teacher alone)")
        self.labels_loss = LabelsLoss(ann) if label_gain > 0 else None
        self.readouts = tuple(readouts or (timesteps,))
        if not all(1 <= step <= timesteps for step in self.readouts):
            raise ValueError(f"readout steps {list(self.readouts)} must lie in 1…{timesteps} (the steps run)")
        self.feature_weight = feature_weight
        self.layers = [name for name, _ in snn.neurons()]
        self.bins = box_bins(ann)
        self.parameters = learnable_parameters(snn.net)
        self.lr, self.total_steps, self.steps_done = lr, max(total_steps, 1), 0
        groups = [{"params": self.parameters, "base_lr": lr}]
        self.thresholds = list(per_channel_thresholds(snn).values()) if thresholds else []
        groups += [{"params": [theta]} for theta in self.thresholds]
        self.optimizer = torch.optim.Adam(groups, lr=lr)
        self._set_initial_thresholds([theta.detach().clone() for theta in self.thresholds])
        self.sharpness = sharpness

    def _set_initial_thresholds(self, initial: list[torch.Tensor]) -> None:
        """θ₀ (as converted) sets each threshold group's learning rate and floor."""
        self.initial_thresholds = initial
        for group, theta0 in zip(self.optimizer.param_groups[1:], initial):
            group["base_lr"] = self.lr * THRESHOLD_LR * float(theta0.mean())

    def train_mode(self, on: bool) -> None:
        """Surrogate gradients on (training) or off (the engine's fast in-place path again)."""
        for _, neuron in self.snn.neurons():
            neuron.surrogate = self.sharpness if on else None
        for parameter in self.parameters + self.thresholds:
            parameter.requires_grad_(on)

    def head_loss(self, head: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], targets: dict | None,
                  imgsz: int, total: torch.Tensor | None = None, share: float = 1.0) -> torch.Tensor:
        """The teacher's distillation loss of one readout of the SNN's head, + label_gain × the labels' loss."""
        loss = distillation_loss(head, teacher, self.bins, self.balance, total, share)
        if self.labels_loss is not None:
            if targets is None:
                raise ValueError("a label gain needs the images' labels")
            loss = loss + self.label_gain * self.labels_loss(head, targets, imgsz)
        return loss

    def step(self, images: torch.Tensor, targets: dict[str, torch.Tensor] | None = None) -> float:
        """One optimizer step on a batch (with several ranks: the global batch, of which this rank takes its part);
        the batch's loss."""
        if self.ranks.world > 1:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._part_loss(images, targets)
            self.ranks.sum_gradients(self.parameters + self.thresholds)
        else:
            loss = self._loss(images, targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        for group in self.optimizer.param_groups:  # cosine decay to 0 over the run (resumable: a step count)
            group["lr"] = 0.5 * group["base_lr"] * (1 + math.cos(math.pi * min(self.steps_done / self.total_steps, 1.0)))
        self.optimizer.step()
        with torch.no_grad():
            for theta, theta0 in zip(self.thresholds, self.initial_thresholds):
                torch.maximum(theta, MIN_THRESHOLD * theta0, out=theta)
        self.steps_done += 1
        self.snn.reset()  # no graph kept alive in the neurons' state
        return float(loss.detach())

    def _loss(self, images: torch.Tensor, targets: dict | None, share: float = 1.0) -> torch.Tensor:
        """The loss of these images; ``share`` < 1: they are that part of a batch split between ranks (the teacher's
        confidence, the box term's normalizer, then summed over every rank)."""
        layers = self.layers if self.feature_weight > 0 else []
        with torch.no_grad(), LayerOutputs(self.ann, layers) as ann_layers:
            teacher = raw_head_outputs(self.ann(images))
        total = self.ranks.sum(teacher_confidence(teacher)).clamp_min(1.0) if self.ranks.world > 1 else None
        with LayerOutputs(self.snn.net, layers, self.timesteps) as snn_layers:
            heads = spiking_head(self.snn, images, self.timesteps, self.readouts)
            loss = sum(self.head_loss(head, teacher, targets, images.shape[-1], total, share)
                       for head in heads) / len(heads)
        if layers:
            loss = loss + self.feature_weight * feature_loss(snn_layers.outputs, ann_layers.outputs)
        return loss

    def _part_loss(self, images: torch.Tensor, targets: dict | None) -> torch.Tensor:
        """This rank's part of the global batch's loss (backpropagated here); the whole batch's loss returned."""
        part = self.ranks.part(images.shape[0])
        if part.stop > part.start:
            loss = self._loss(images[part], shard_targets(targets, part), (part.stop - part.start) / images.shape[0])
            loss.backward()
            loss = loss.detach()
        else:  # fewer images than ranks: this one adds nothing but still joins every sum (on the ranks' device)
            loss = torch.zeros((), device=images.device)
            self.ranks.sum(torch.zeros((), device=images.device))  # the teacher's confidence
        return self.ranks.sum(loss.clone())

    def state(self) -> dict[str, torch.Tensor]:
        """Optimizer moments and counters as named tensors (for a resume file)."""
        out = {"steps_done": torch.tensor(self.steps_done)}
        out.update({f"theta0.{index}": theta0 for index, theta0 in enumerate(self.initial_thresholds)})
        out.update(adam_tensors(self.optimizer))
        return out

    def load_state(self, saved: dict[str, torch.Tensor]) -> None:
        """Continue from ``state()``'s tensors, each checked against this run's parameters first (a ValueError
        naming the first that does not fit: the optimizer would otherwise fail mid-epoch, or run on garbage)."""
        steps = checked_steps(saved, self.total_steps)
        restore_adam(self.optimizer, saved)
        self.steps_done = steps
        if self.thresholds:
            initial = [saved[f"theta0.{index}"] for index in range(len(self.thresholds))]
            if any(a.shape != b.shape or not torch.isfinite(a).all() for a, b in zip(initial, self.thresholds)):
                raise ValueError("the initial thresholds do not fit this network's")
            self._set_initial_thresholds(initial)
