"""Hybrid fine-tuning of a converted detector at its target T (Rathi et al., ICLR 2020), taught by its own ANN.

The converted SNN runs T steps with surrogate gradients (``engine.surrogate``; BPTT through the membranes); its
head's running output after T steps is pulled towards the ANN's on the same images (knowledge distillation, no
labels needed): class scores by binary cross-entropy against the ANN's probabilities, box-side distributions by
KL divergence weighted by the ANN's confidence at each anchor (background anchors barely matter to detection).
Every convolution's weights and biases are trained; with ``thresholds`` the spiking layers' thresholds θ too, one
per channel (DIET-SNN, Rathi & Roy 2021: at few steps where a neuron fires matters as much as what feeds it; the
membrane's start, v0 = initial_membrane·θ, follows θ). Adam's steps are about lr in size whatever the scale, and θ
(~1–5) is some 30× larger than a weight (~0.05–0.2), so θ's learning rate is lr·THRESHOLD_LR·mean θ₀ of its layer:
each layer's θ moves by about THRESHOLD_LR·lr of itself per step; θ is kept ≥ MIN_THRESHOLD·θ₀. The graph stays as
converted.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spikeyolo.engine.runner import SpikingDetector
from spikeyolo.tune.calibrate import LayerOutputs, feeding_conv
from spikeyolo.ultra import box_bins, learnable_parameters, raw_head_outputs

THRESHOLD_LR = 10.0
MIN_THRESHOLD = 0.05


def distillation_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], bins: int) -> torch.Tensor:
    """Class BCE against the teacher's probabilities + confidence-weighted KL of the box-side distributions."""
    classes = F.binary_cross_entropy_with_logits(student["scores"], teacher["scores"].sigmoid())
    weight = teacher["scores"].sigmoid().amax(1)  # [B, A]: how much each anchor is an object to the teacher
    batch, _, anchors = student["boxes"].shape
    log_student = student["boxes"].view(batch, 4, bins, anchors).log_softmax(2)
    log_teacher = teacher["boxes"].view(batch, 4, bins, anchors).log_softmax(2)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(2).mean(1)  # [B, A]
    return classes + (kl * weight).sum() / weight.sum().clamp_min(1e-6)


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


def spiking_head(snn: SpikingDetector, images: torch.Tensor, timesteps: int) -> dict[str, torch.Tensor]:
    """The head's raw outputs after ``timesteps`` steps, differentiable (one chunk of all T)."""
    snn.reset()
    snn.clock.begin(timesteps, images.shape[0])
    raw = raw_head_outputs(snn.net(images))
    return {key: value.view(timesteps, images.shape[0], *value.shape[1:])[-1] for key, value in raw.items()}


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
                 sharpness: float = 4.0, feature_weight: float = 0.0, thresholds: bool = False):
        self.snn, self.ann, self.timesteps = snn, ann.eval(), timesteps
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

    def step(self, images: torch.Tensor) -> float:
        layers = self.layers if self.feature_weight > 0 else []
        with torch.no_grad(), LayerOutputs(self.ann, layers) as ann_layers:
            teacher = raw_head_outputs(self.ann(images))
        with LayerOutputs(self.snn.net, layers, self.timesteps) as snn_layers:
            loss = distillation_loss(spiking_head(self.snn, images, self.timesteps), teacher, self.bins)
        if layers:
            loss = loss + self.feature_weight * feature_loss(snn_layers.outputs, ann_layers.outputs)
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

    def state(self) -> dict[str, torch.Tensor]:
        """Optimizer moments and counters as named tensors (for a resume file)."""
        out = {"steps_done": torch.tensor(self.steps_done)}
        out.update({f"theta0.{index}": theta0 for index, theta0 in enumerate(self.initial_thresholds)})
        for index, state in self.optimizer.state_dict()["state"].items():
            out.update({f"adam.{index}.{key}": torch.as_tensor(value) for key, value in state.items()})
        return out

    def load_state(self, saved: dict[str, torch.Tensor]) -> None:
        state = {}
        for key, value in saved.items():
            if key.startswith("adam."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        full = self.optimizer.state_dict()
        full["state"] = state
        self.optimizer.load_state_dict(full)
        self.steps_done = int(saved["steps_done"])
        if self.thresholds:
            self._set_initial_thresholds([saved[f"theta0.{index}"] for index in range(len(self.thresholds))])
