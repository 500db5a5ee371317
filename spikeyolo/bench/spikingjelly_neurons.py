"""Our converted graph with its neurons run by SpikingJelly (IFNode, multi-step, reset by subtraction).

SpikingJelly cannot trace an ultralytics detector, so the comparison keeps our layers and swaps only
the neurons: every binary IFNeuron becomes a SpikingJelly ``IFNode(v_reset=None, step_mode='m')``
started at the same initial membrane. Outputs are the same; only the neuron code differs.

``with_spikingjelly_execution`` also runs the layers the way a SpikingJelly multi-step network does:
the image repeated over T (``x.unsqueeze(0).repeat(T, 1, 1, 1, 1)``) and every stateless layer applied
to all T·N folded frames at once (``SeqToANNContainer`` / ``step_mode='m'``), in PyTorch's default NCHW
layout. Same outputs again; the difference to ours is then the whole engine, not only the neurons.
"""
from __future__ import annotations

import copy

import torch

from spikeyolo.engine.layers import IFNeuron, Stateful
from spikeyolo.engine.runner import ImageConv, SpikingDetector


class SpikingJellyIF(Stateful):
    """A SpikingJelly IF node in our time-folded layer contract; spikes are scaled by θ like ours."""

    def __init__(self, neuron: IFNeuron):
        super().__init__()
        from spikingjelly.activation_based import neuron as sj_neuron

        if neuron.negative_slope > 0 or neuron.max_spikes != 1:
            raise ValueError("SpikingJelly's IFNode has no signed (IBT) or burst variant: benchmark a binary "
                             "unsigned SNN")
        if neuron.threshold.numel() != 1:
            raise ValueError("SpikingJelly's IFNode takes one threshold per layer; this layer has one per channel")
        self.threshold = float(neuron.threshold.item())
        self.initial_membrane = neuron.initial_membrane
        self.node = sj_neuron.IFNode(v_threshold=self.threshold, v_reset=None, step_mode="m")
        self.register_state("v0", self.initial_membrane * self.threshold)  # the node's membrane at the first step

    def reset(self) -> None:
        super().reset()
        self.node.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = self.unfold(x)
        if not torch.is_tensor(self.node.v):  # reset: SpikingJelly holds its membrane as a float until the first step
            self.node.v = self.v0.clone()
        spikes = self.node((x_seq.contiguous() if x_seq.stride(0) == 0 else x_seq).to(self.v0.dtype))
        return (spikes * self.threshold).flatten(0, 1).to(x.dtype)  # spikes in the convolutions' dtype


def with_spikingjelly_neurons(snn: SpikingDetector) -> SpikingDetector:
    """A copy of ``snn`` whose IF neurons are SpikingJelly IFNodes."""
    twin = copy.deepcopy(snn)
    for name, neuron in list(twin.neurons()):
        parent_name, _, attr = name.rpartition(".")
        parent = twin.net.get_submodule(parent_name) if parent_name else twin.net
        setattr(parent, attr, SpikingJellyIF(neuron))
    twin._geometry = None
    return twin


class RepeatedInput(torch.nn.Module):
    """The first convolution as SpikingJelly feeds an image: on T copies of it, one per step
    (``x.unsqueeze(0).repeat(T, 1, 1, 1, 1)``, all T·N frames in one convolution)."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        out = self.layer(x[0].unsqueeze(0).repeat(steps, 1, 1, 1, 1).flatten(0, 1))
        return out.view(steps, batch, *out.shape[1:])


def with_spikingjelly_execution(snn: SpikingDetector) -> SpikingDetector:
    """A copy of ``snn`` run as a SpikingJelly multi-step network: its IFNodes, the image repeated over T, NCHW.

    Run it with ``chunk=timesteps`` (all steps folded into one batch per layer, as ``step_mode='m'`` does).
    """
    twin = with_spikingjelly_neurons(snn)
    twin.use_channels_last(False)
    for name, module in list(twin.net.named_modules()):
        if isinstance(module, ImageConv):
            parent_name, _, attr = name.rpartition(".")
            setattr(twin.net.get_submodule(parent_name), attr, RepeatedInput(module.layer))
    return twin
