"""Where an SNN departs from its ANN, layer by layer (`spikeyolo layers`).

At few steps an SNN's accuracy is lost somewhere: the first spiking layers quantize, later ones receive uneven
spike trains and fire where their ANN twin is silent (or the reverse), and the error compounds with depth. This
runs the ANN and the SNN on the same images and measures, at every spiking layer (and every head accumulator)
and every T asked for, how far the SNN's output over the first T steps (a neuron's rate × θ, an accumulator's
running mean) is from the ANN's activation: the relative error ‖SNN − ANN‖ / ‖ANN‖ over every element, the
mean shift (SNN − ANN) relative to the ANN's mean magnitude, and the centred error: the relative error once each
channel's mean difference is removed, what bias correction cannot remove (a uniform shift of every class logit
leaves the ranking of detections as it was; this part does not). Layers come in the
order the network runs them, so the table reads as the error's path through the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from spikeyolo.engine.layers import Accumulate
from spikeyolo.engine.runner import SpikingDetector
from spikeyolo.tune.calibrate import LayerOutputs, calibration_targets


@dataclass(frozen=True)
class LayerError:
    """One layer's departure from the ANN: ``relative_error``, ``mean_shift`` and ``centred_error`` by T."""
    name: str
    kind: str  # "neuron" or "head" (an accumulating head convolution)
    threshold: float | None  # a neuron layer's mean θ
    ann_mean: float  # the ANN activation's mean
    relative_error: dict[int, float]  # ‖SNN − ANN‖₂ / ‖ANN‖₂ over every element of every image
    mean_shift: dict[int, float]  # (mean SNN − mean ANN) / mean |ANN|
    centred_error: dict[int, float]  # as relative_error, each channel's mean difference removed: what bias
    #                                  correction cannot remove (the spike trains' timing, not their average)

    @classmethod
    def from_dict(cls, saved: dict) -> "LayerError":
        by_t = {key: {int(t): v for t, v in saved[key].items()} for key in
                ("relative_error", "mean_shift", "centred_error")}
        return cls(saved["name"], saved["kind"], saved["threshold"], saved["ann_mean"], **by_t)

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "threshold": self.threshold, "ann_mean": self.ann_mean,
                "relative_error": {str(t): e for t, e in self.relative_error.items()},
                "mean_shift": {str(t): s for t, s in self.mean_shift.items()},
                "centred_error": {str(t): e for t, e in self.centred_error.items()}}


class _Sums:
    """Float64 running sums of one layer over batches."""

    def __init__(self, name: str, timesteps: list[int]):
        self.name = name
        self.squared_error = {t: 0.0 for t in timesteps}
        self.difference = {t: 0.0 for t in timesteps}
        self.channel_difference = {t: 0.0 for t in timesteps}  # [C] sums of SNN − ANN per channel
        self.squared = self.absolute = self.total = 0.0
        self.count = 0

    def add(self, ann: torch.Tensor, snn_by_step: torch.Tensor) -> None:
        """``snn_by_step``: [T_max, N, ...], the SNN's output over the first t steps at index t − 1."""
        if snn_by_step.shape[1:] != ann.shape:
            raise ValueError(f"the ANN is not the network this SNN was converted from: its {self.name} gives "
                             f"{list(ann.shape)}, the SNN's {list(snn_by_step.shape[1:])}")
        ann = ann.double()
        self.squared += float((ann ** 2).sum())
        self.absolute += float(ann.abs().sum())
        self.total += float(ann.sum())
        self.count += ann.numel()
        for t in self.squared_error:
            snn = snn_by_step[t - 1].double()
            difference = snn - ann
            self.squared_error[t] += float((difference ** 2).sum())
            self.difference[t] += float(difference.sum())
            self.channel_difference[t] = self.channel_difference[t] + difference.transpose(0, 1).flatten(1).sum(1)

    def result(self, name: str, module: nn.Module) -> LayerError:
        head = isinstance(module, Accumulate)
        threshold = None if head else float(module.threshold.float().mean())
        norm, magnitude = max(self.squared, 1e-30) ** 0.5, max(self.absolute, 1e-30)
        per_channel = self.count / max(len(self.channel_difference[min(self.squared_error)]), 1)
        centred = {t: max(e - float((self.channel_difference[t] ** 2).sum()) / per_channel, 0.0) ** 0.5 / norm
                   for t, e in self.squared_error.items()}
        return LayerError(name, "head" if head else "neuron", threshold, self.total / max(self.count, 1),
                          {t: e ** 0.5 / norm for t, e in self.squared_error.items()},
                          {t: d / magnitude for t, d in self.difference.items()}, centred)


def _by_step(output: torch.Tensor, steps: int, accumulated: bool) -> torch.Tensor:
    """[T·N, ...] per-step outputs → [T, N, ...] outputs over the first t steps (a neuron's cumulative mean; an
    accumulator's output already is its running mean)."""
    per_step = output.view(steps, -1, *output.shape[1:])
    if accumulated:
        return per_step
    counts = torch.arange(1, steps + 1, device=output.device, dtype=per_step.dtype)
    return per_step.cumsum(0) / counts.view(-1, *([1] * (per_step.dim() - 1)))


@torch.no_grad()
def layer_errors(snn: SpikingDetector, ann: nn.Module, batches: Iterable[torch.Tensor],
                 timesteps: list[int]) -> list[LayerError]:
    """Every spiking layer's and head accumulator's error against the ANN at each of ``timesteps`` (one SNN run
    per batch to the largest T), in the order the network runs them."""
    targets = calibration_targets(snn)
    ann_layers = dict(ann.named_modules())
    missing = [name for name in targets if name not in ann_layers]
    if missing:
        raise ValueError(f"the ANN is not the network this SNN was converted from: it has no layer {missing[0]}")
    modules = {name: snn.net.get_submodule(name) for name in targets}
    steps = max(timesteps)
    sums = {name: _Sums(name, timesteps) for name in targets}
    ann.eval()
    for images in batches:
        with LayerOutputs(ann, targets) as taps:
            ann(images)
        wanted = dict(taps.outputs)
        handles = [module.register_forward_hook(
            lambda m, _i, out, n=name: sums[n].add(wanted[n], _by_step(out.double(), steps, isinstance(m, Accumulate))))
            for name, module in modules.items()]
        try:
            snn(images, steps, chunk=steps)
        finally:
            for handle in handles:
                handle.remove()
            snn.reset()
    return [sums[name].result(name, modules[name]) for name in targets]


def table(errors: list[LayerError], timesteps: list[int]) -> str:
    """The terminal table: one row per layer, the relative error at each T, and at the largest T the mean shift and
    the centred error."""
    last = max(timesteps)
    head = f"{'layer':26s} {'θ':>7} {'ANN mean':>9} " + " ".join(f"{'err T=' + str(t):>9}" for t in timesteps) + \
        f" {'shift T=' + str(last):>11} {'centred T=' + str(last):>13}"
    rows = [head]
    for e in errors:
        theta = f"{e.threshold:7.3f}" if e.threshold is not None else f"{'head':>7}"
        rows.append(f"{e.name:26s} {theta} {e.ann_mean:9.4f} " +
                    " ".join(f"{e.relative_error[t]:9.3f}" for t in timesteps) +
                    f" {e.mean_shift[last]:+11.3f} {e.centred_error[last]:13.3f}")
    return "\n".join(rows)


def measure_layers(weights, data, timesteps=(1, 2, 4, 8), split: str = "val", images: int = 16,
                   imgsz: int | None = None, batch: int = 8, device: str = "auto", mode: str | None = None,
                   percentile: float = 99.9, burst: int | None = None, snm: bool = False,
                   train_split: str | None = None, val_split: str | None = None, ann: str | None = None) -> dict:
    """`spikeyolo layers` as a Python API: the layer errors of ``weights``' SNN on the first ``images`` images of
    ``split``, as a report dict (its ``layers`` are LayerError.as_dict()s). ``ann``: the detector checkpoint to
    compare with (default: ``weights`` itself, or the checkpoint beside an SNN artifact)."""
    from spikeyolo.convert.load import load_model, read_weights
    from spikeyolo.data.images import image_batches, split_images
    from spikeyolo.device import torch_device
    from spikeyolo.eval.val import checked_timesteps, load_for_split

    device, timesteps = torch_device(device), checked_timesteps(timesteps)
    loaded, data_yaml = load_for_split(weights, data, split, imgsz, device, mode, percentile, 64, ann is None, burst,
                                       snm, train_split, val_split, command="layers")
    if ann and read_weights(ann).is_snn:
        raise ValueError(f"--ann {ann} is an SNN artifact: pass the detector checkpoint (the ANN) to compare with")
    network = load_model(ann, device, snn=False).ann if ann else loaded.ann
    if network is None:
        named = Path(str(loaded.weights.source.get("weights") or "?")).name
        raise ValueError(f"{weights} is an SNN artifact and its detector checkpoint ({named}) is not in its folder: "
                         "the layer errors need the ANN; pass it with --ann")
    loaded.snn.use_channels_last(False)  # the ANN's layout: both see the same tensors
    files = split_images(data_yaml, split)[:images]
    batches = (b.to(device) for b in image_batches(files, loaded.settings["imgsz"], batch))
    errors = layer_errors(loaded.snn, network.float(), batches, timesteps)
    return {"weights": str(weights), "dataset": str(data), "split": split, "images": len(files),
            "timesteps": timesteps, **{k: loaded.settings[k] for k in ("mode", "burst", "snm", "imgsz")},
            "layers": [e.as_dict() for e in errors]}
