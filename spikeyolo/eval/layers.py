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

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "threshold": self.threshold, "ann_mean": self.ann_mean,
                "relative_error": {str(t): e for t, e in self.relative_error.items()},
                "mean_shift": {str(t): s for t, s in self.mean_shift.items()},
                "centred_error": {str(t): e for t, e in self.centred_error.items()}}


class _Sums:
    """Float64 running sums of one layer over batches, fed one chunk of steps at a time (memory: one chunk)."""

    def __init__(self, name: str, module: nn.Module, timesteps: list[int]):
        self.name, self.module, self.accumulated = name, module, isinstance(module, Accumulate)
        self.squared_error = {t: 0.0 for t in timesteps}
        self.difference = {t: 0.0 for t in timesteps}
        self.channel_difference = {t: 0.0 for t in timesteps}  # [C] sums of SNN − ANN per channel
        self.squared = self.absolute = self.total = 0.0
        self.count = 0
        self.ann, self.running, self.step = None, None, 0

    def begin(self, ann: torch.Tensor) -> None:
        """A new batch: the ANN's activation it is compared with; the SNN's steps count from 1 again."""
        self.ann, self.running, self.step = ann, None, 0  # kept as it came (float64 only while compared)
        ann = ann.double()
        self.squared += float((ann ** 2).sum())
        self.absolute += float(ann.abs().sum())
        self.total += float(ann.sum())
        self.count += ann.numel()

    def add_chunk(self, output: torch.Tensor) -> None:
        """The SNN's [steps·N, ...] output of one chunk of steps: each step's output over the steps so far (a
        neuron's running mean; an accumulator's output already is one) is compared at the T asked for."""
        batch = self.ann.shape[0]
        if output.shape[1:] != self.ann.shape[1:] or output.shape[0] % batch:
            raise ValueError(f"the ANN is not the network this SNN was converted from: its {self.name} gives "
                             f"{list(self.ann.shape)}, the SNN's {list(output.shape)} over the steps")
        for step_output in output.double().view(-1, *self.ann.shape):
            self.step += 1
            if not self.accumulated:
                self.running = step_output if self.running is None else self.running + step_output
            if self.step in self.squared_error:
                self._compare(self.step, step_output if self.accumulated else self.running / self.step)

    def _compare(self, t: int, snn: torch.Tensor) -> None:
        difference = snn - self.ann.double()
        self.squared_error[t] += float((difference ** 2).sum())
        self.difference[t] += float(difference.sum())
        self.channel_difference[t] = self.channel_difference[t] + difference.transpose(0, 1).flatten(1).sum(1)

    def result(self) -> LayerError:
        threshold = None if self.accumulated else float(self.module.threshold.float().mean())
        norm, magnitude = max(self.squared, 1e-30) ** 0.5, max(self.absolute, 1e-30)
        per_channel = self.count / max(len(self.channel_difference[min(self.squared_error)]), 1)
        centred = {t: max(e - float((self.channel_difference[t] ** 2).sum()) / per_channel, 0.0) ** 0.5 / norm
                   for t, e in self.squared_error.items()}
        return LayerError(self.name, "head" if self.accumulated else "neuron", threshold,
                          self.total / max(self.count, 1), {t: e ** 0.5 / norm for t, e in self.squared_error.items()},
                          {t: d / magnitude for t, d in self.difference.items()}, centred)


@torch.no_grad()
def layer_errors(snn: SpikingDetector, ann: nn.Module, batches: Iterable[torch.Tensor], timesteps: list[int],
                 chunk: int | None = None) -> list[LayerError]:
    """Every spiking layer's and head accumulator's error against the ANN at each of ``timesteps`` (one SNN run
    per batch to the largest T, ``chunk`` steps at a time as the engine runs them), in the order the network runs
    them."""
    targets = calibration_targets(snn)
    ann_layers = dict(ann.named_modules())
    missing = [name for name in targets if name not in ann_layers]
    if missing:
        raise ValueError(f"the ANN is not the network this SNN was converted from: it has no layer {missing[0]}")
    sums = {name: _Sums(name, snn.net.get_submodule(name), timesteps) for name in targets}
    handles = [layer.module.register_forward_hook(lambda _m, _i, out, layer=layer: layer.add_chunk(out))
               for layer in sums.values()]
    ann.eval()
    try:
        for images in batches:
            with LayerOutputs(ann, targets) as taps:
                ann(images)
            for name, layer in sums.items():
                layer.begin(taps.outputs[name])
            snn(images, max(timesteps), chunk=chunk)
    finally:
        for handle in handles:
            handle.remove()
        snn.reset()
    return [layer.result() for layer in sums.values()]


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
                   percentile: float = 99.9, calib_images: int = 64, burst: int | None = None, snm: bool = False,
                   train_split: str | None = None, val_split: str | None = None, ann: str | None = None,
                   chunk: int | None = None) -> tuple[dict, list[LayerError]]:
    """`spikeyolo layers` as a Python API: (what was measured: weights, dataset, split, images, T, mode, burst, SNM,
    input size; the layer errors of ``weights``' SNN on the first ``images`` images of ``split``). ``ann``: the
    detector checkpoint to compare with (default: ``weights`` itself, or the checkpoint beside an SNN artifact)."""
    from spikeyolo.convert.load import load_model, read_weights
    from spikeyolo.data.images import image_batches, split_images
    from spikeyolo.device import torch_device
    from spikeyolo.eval.val import checked_timesteps, load_for_split

    device, timesteps = torch_device(device), checked_timesteps(timesteps)
    loaded, data_yaml, split, _ = load_for_split(weights, data, split, imgsz, device, mode, percentile, calib_images,
                                              ann is None, burst, snm, train_split, val_split, command="layers")
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
    errors = layer_errors(loaded.snn, network.float(), batches, timesteps, chunk)
    return ({"weights": str(weights), "dataset": str(data), "split": split, "images": len(files),
             "timesteps": timesteps, **{k: loaded.settings[k] for k in ("mode", "burst", "snm", "imgsz")}}, errors)
