"""Training-free calibration of a converted detector at a chosen T (Li et al., "A free lunch from ANN", ICML 2021).

At few timesteps a spiking layer's rate is not its ANN twin's activation: quantization at T levels, and the
*unevenness* of spike trains arriving from earlier layers, bias every channel's mean. Bias correction measures,
layer by layer in the order the network runs them, the mean error per channel between the ANN's activation and
the SNN's rate over T steps on a few hundred unlabeled images, and adds it to the bias of the convolution that feeds
the layer (the layer's input current moves by the error, so does its rate). Layers are taken in turn: each is
measured with every earlier one already corrected, and the SNN run stops at the layer being measured. The head's
accumulating convolutions are corrected the same way (their running mean against the ANN's output).

What changes: convolution biases only; the neurons, thresholds and the graph stay as converted, so the result is
an ordinary SNN artifact and runs at any T (it is tuned for the T it was calibrated at).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from spikeyolo.engine.layers import Accumulate, IFNeuron
from spikeyolo.engine.runner import ImageConv, SpikingDetector


class _Stop(Exception):
    """Raised by a hook once the layer being measured has run: the rest of the network is not needed."""


def calibration_targets(snn: SpikingDetector) -> list[str]:
    """Names of the modules calibrated: every spiking neuron (``….act``) and every head accumulator, in the order the
    network runs them (found by one forward pass on a small input)."""
    candidates = {name: m for name, m in snn.net.named_modules() if isinstance(m, (IFNeuron, Accumulate))}
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda _m, _i, _o, n=name: order.append(n)) for name, m in candidates.items()]
    try:
        snn(torch.zeros(1, 3, 64, 64, device=next(snn.parameters()).device), 1)
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def feeding_conv(net: nn.Module, target: str) -> nn.Conv2d:
    """The convolution whose bias sets the input current of ``target`` (a neuron ``X.act``: X's conv; an
    accumulator: its own convolution)."""
    module = net.get_submodule(target)
    if isinstance(module, Accumulate):
        return module.layer
    conv = net.get_submodule(target.rsplit(".act", 1)[0]).conv
    conv = conv.layer if isinstance(conv, ImageConv) else conv
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.zeros(conv.out_channels, device=conv.weight.device))
    return conv


def _channel_sums(x: torch.Tensor) -> torch.Tensor:
    """[N, C, ...] → per-channel sums [C] (float64, so that a few hundred images add up exactly enough)."""
    return x.double().transpose(0, 1).flatten(1).sum(1)


class LayerOutputs:
    """``with LayerOutputs(net, names, steps) as taps:`` a forward pass keeps each named module's output in
    ``taps.outputs`` (with ``steps``: a spiking layer's [T·N, ...] output as its rate, the mean over T)."""

    def __init__(self, net: nn.Module, names: list[str], steps: int | None = None):
        self.net, self.names, self.steps, self.outputs, self.hooks = net, names, steps, {}, []

    def _keep(self, name):
        def hook(_module, _inputs, output):
            self.outputs[name] = output if self.steps is None else output.view(self.steps, -1, *output.shape[1:]).mean(0)
        return hook

    def __enter__(self):
        self.hooks = [self.net.get_submodule(name).register_forward_hook(self._keep(name)) for name in self.names]
        return self

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()


@torch.no_grad()
def ann_channel_means(ann: nn.Module, targets: list[str], batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per target, the ANN's mean activation per channel over ``batches`` (the same module names in the ANN)."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    ann.eval()
    with LayerOutputs(ann, targets) as taps:
        for images in batches:
            ann(images)
            for name, output in taps.outputs.items():
                sums[name] = sums.get(name, 0) + _channel_sums(output)
                counts[name] = counts.get(name, 0) + output[:, 0].numel()
    return {name: (sums[name] / counts[name]).float() for name in targets}


@torch.no_grad()
def snn_channel_means(snn: SpikingDetector, target: str, batches: Iterable[torch.Tensor],
                      timesteps: int) -> torch.Tensor:
    """The SNN's mean output per channel at ``target`` over ``batches``: a neuron's rate over T steps, an
    accumulator's running mean after T steps. Each run stops once ``target`` has run."""
    module = snn.net.get_submodule(target)
    total, count = 0, 0

    def hook(_module, _inputs, output):
        nonlocal total, count
        per_step = output.view(timesteps, -1, *output.shape[1:])
        value = per_step[-1] if isinstance(module, Accumulate) else per_step.mean(0)
        total, count = total + _channel_sums(value), count + value[:, 0].numel()
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        for images in batches:
            try:
                snn(images, timesteps, chunk=timesteps)
            except _Stop:
                pass
    finally:
        handle.remove()
        snn.reset()
    return (total / count).float()


@torch.no_grad()
def correct_biases(snn: SpikingDetector, ann: nn.Module, batches: list[torch.Tensor], timesteps: int,
                   progress: Callable[[str], None] | None = None, start: int = 0) -> dict[str, float]:
    """Bias correction, layer by layer (from the ``start``-th target: resuming), in place. Returns the mean absolute
    error per channel of every target before its correction (in units of the layer's output)."""
    targets = calibration_targets(snn)
    wanted = ann_channel_means(ann, targets, batches)
    errors = {}
    for name in targets[start:]:
        error = wanted[name] - snn_channel_means(snn, name, batches, timesteps)
        conv = feeding_conv(snn.net, name)
        conv.bias.add_(error.to(conv.bias.dtype))
        errors[name] = float(error.abs().mean())
        if progress:
            progress(name)
    return errors
