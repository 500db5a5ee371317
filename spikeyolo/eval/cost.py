"""SNN cost: firing rate per layer, synaptic operations, estimated energy (45 nm), memory.

Counting rules (an estimate, as in the literature):
- the box decoding (DFL) is post-processing and not counted;
- a convolution fed by spikes costs one accumulate (AC) per input event per synapse it reaches:
  SOPs = nonzero inputs × (MACs / input elements); inputs that are sums of spike trains (residual
  adds) count once where nonzero;
- the first convolution sees the constant image: its multiply-accumulates (MACs) are computed once;
- energy: 0.9 pJ per AC and 4.6 pJ per MAC (Horowitz, 45 nm); the ANN is all MACs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spikeyolo.engine.runner import ConstantInput, SpikingDetector
from spikeyolo.ultra import DFL

E_AC_PJ = 0.9
E_MAC_PJ = 4.6


@dataclass
class LayerCount:
    name: str
    macs_per_image: int = 0          # the ANN's multiply-accumulates of this conv, per image
    input_elements_per_image: int = 0
    events: torch.Tensor | None = None  # nonzero inputs per step, summed over images [T]
    analog: bool = False             # the first conv: fed the image, not spikes
    pending: list | None = None      # per-call counts of the batch in progress (chunks)


class CostMeter:
    """Hooks a SpikingDetector's convolutions and neurons; accumulates counts over batches."""

    def __init__(self, snn: SpikingDetector):
        self.snn = snn
        self.images = 0
        self.layers: dict[str, LayerCount] = {}
        self.spikes: dict[str, torch.Tensor] = {}
        self.neuron_sizes: dict[str, int] = {}
        analog = {id(m.layer) for m in snn.net.modules() if isinstance(m, ConstantInput)}
        decoding = {id(m) for head in snn.net.modules() if isinstance(head, DFL) for m in head.modules()}
        self._hooks = [conv.register_forward_hook(self._count(name, id(conv) in analog))
                       for name, conv in snn.net.named_modules()
                       if isinstance(conv, nn.Conv2d) and id(conv) not in decoding]
        self._clock = (snn.stateful() or [None])[0]  # every stateful layer carries the call's step count
        snn.record(True)

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self.snn.record(False)

    def _count(self, name: str, analog: bool):
        def hook(conv, inputs, output):
            x = inputs[0]
            steps = 1 if analog or self._clock is None else self._clock.timesteps
            per_image_in = x[0].numel()
            macs = output[0].numel() * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]
            layer = self.layers.setdefault(name, LayerCount(name, macs, per_image_in, analog=analog, pending=[]))
            if not analog:
                layer.pending.append(x.ne(0).sum((1, 2, 3)).view(steps, -1).sum(1).double().cpu())  # any layout
        return hook

    def after_batch(self, images: torch.Tensor, snn: SpikingDetector | None = None) -> None:
        """Collect the neurons' per-step spike records of the batch just run."""
        self.images += images.shape[0]
        for layer in self.layers.values():
            if layer.pending:
                events = torch.cat(layer.pending)
                layer.events = events if layer.events is None else layer.events + events
                layer.pending = []
        for name, neuron in self.snn.neurons():
            counts = torch.cat(neuron.spikes_per_step).double().cpu()
            self.spikes[name] = counts if name not in self.spikes else self.spikes[name] + counts
            self.neuron_sizes[name] = neuron.v[0].numel() if neuron.v is not None else 0

    def report(self, timesteps: list[int]) -> dict:
        """Cost at each T (per image) and the per-layer table at the largest T."""
        n = max(self.images, 1)
        first_macs = sum(l.macs_per_image for l in self.layers.values() if l.analog)
        ann_macs = sum(l.macs_per_image for l in self.layers.values())
        per_t = {}
        for t in timesteps:
            sops = sum(float(l.events[:t].sum()) * l.macs_per_image / l.input_elements_per_image
                       for l in self.layers.values() if not l.analog) / n
            spikes = sum(float(s[:t].sum()) for s in self.spikes.values()) / n
            neurons = sum(self.neuron_sizes.values())
            per_t[t] = {"sops": sops, "energy_mj": (first_macs * E_MAC_PJ + sops * E_AC_PJ) * 1e-9,
                        "firing_rate": spikes / max(neurons * t, 1)}
        horizon = max(timesteps)
        layers = [{"name": name, "neurons": self.neuron_sizes[name],
                   "firing_rate": float(s[:horizon].sum()) / n / max(self.neuron_sizes[name] * horizon, 1)}
                  for name, s in self.spikes.items()]
        convs = [{"name": l.name, "ann_macs": l.macs_per_image, "analog_input": l.analog,
                  "sops": 0.0 if l.analog else float(l.events[:horizon].sum()) * l.macs_per_image
                  / l.input_elements_per_image / n} for l in self.layers.values()]
        params = sum(p.numel() for p in self.snn.net.parameters())
        state = sum(self.neuron_sizes.values()) * 4
        bursts = max((n.max_spikes for _, n in self.snn.neurons()), default=1) > 1
        model = f"estimate, 45 nm: {E_AC_PJ} pJ/AC, {E_MAC_PJ} pJ/MAC" + (
            "; with bursts an input carrying several spikes counts as one event: a lower bound" if bursts else "")
        return {"per_timestep": per_t, "ann_macs": ann_macs, "ann_energy_mj": ann_macs * E_MAC_PJ * 1e-9,
                "first_layer_macs": first_macs, "neuron_layers": layers, "conv_layers": convs,
                "parameters": params, "neuron_state_bytes_per_image": state,
                "energy_model": model}

