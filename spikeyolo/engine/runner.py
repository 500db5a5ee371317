"""Running a converted detector: time folded into the batch, detections at every timestep."""
from __future__ import annotations

import torch
from torch import nn

from spikeyolo.engine.layers import Clock, IFNeuron, Stateful, Timed
from spikeyolo.engine.neuron import check_backend


class ConstantInput(nn.Module):
    """The image's convolution: its input is the same at every step, so it runs once per chunk and its output
    ``[N, ...]`` stands for every step (the next neuron expands it over time as a view: exact, and no copy)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_precision(precision: str) -> str:
    """``precision`` if it is one of PRECISIONS, else one clear ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision


def reduced_precision(device: torch.device, precision: str):
    """Autocast context for ``precision`` ('fp32' disables it): convolutions in fp16/bf16, sums in float32."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


CPU_FOLDED_BATCH = 16  # images × steps per layer call on the CPU: larger folded batches fall out of cache


def default_chunk(images: torch.Tensor, timesteps: int) -> int:
    """Steps per call: all of them on a GPU; on the CPU as many as keep the folded batch ≤ CPU_FOLDED_BATCH.

    Measured with ``spikeyolo benchmark`` (README): at batch 16, T = 8 on 2 cores, one step at a time ran
    1.7x faster than all 8 folded (a 128-image batch per convolution); at batch 1 folding all 8 ran 1.7x faster.
    """
    if images.is_cuda:
        return timesteps
    return max(1, min(timesteps, CPU_FOLDED_BATCH // max(images.shape[0], 1)))


class SpikingDetector(nn.Module):
    """A converted ultralytics detector; ``forward(images, timesteps)`` → predictions at every step.

    Returns ``[T, N, 4 + nc, anchors]``: row t is the head's running output after t+1 steps,
    decoded by the ultralytics Detect head (boxes in input pixels, class probabilities).
    ``chunk`` runs the steps in slices of that many, carrying state (default: ``default_chunk``).
    Convolutions run channels-last (NHWC) unless ``channels_last=False``: oneDNN's and cuDNN's fast layout;
    in float32 unless ``set_precision('fp16' | 'bf16')`` (autocast; membranes stay float32).
    """

    def __init__(self, net: nn.Module, meta: dict | None = None, channels_last: bool = True):
        super().__init__()
        self.net = net
        self.meta = meta or {}
        self.precision = "fp32"
        self.clock = Clock()  # the one step count (and batch) of the chunk being run, shared by every timed layer
        self.share_clock()
        self.chunk_observers: list = []  # called (images, steps, first) after each chunk (the cost meter's event graph)
        self.use_channels_last(channels_last)

    def share_clock(self) -> None:
        """Give every timed layer this detector's clock (again after layers were swapped in)."""
        for module in self.net.modules():
            if isinstance(module, Timed):
                module.clock = self.clock

    def set_precision(self, precision: str) -> None:
        """Convolutions in 'fp32' (default), 'fp16' or 'bf16'; neurons and the head's sums stay float32."""
        self.precision = check_precision(precision)

    def use_channels_last(self, on: bool = True) -> None:
        """Store the convolution weights, and feed the images, channels-last (on) or NCHW (off)."""
        self.channels_last = bool(on)
        self.net.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    @property
    def names(self) -> dict:
        return self.net.names

    def stateful(self) -> list[Stateful]:
        return [m for m in self.net.modules() if isinstance(m, Stateful)]

    def neurons(self) -> list[tuple[str, IFNeuron]]:
        return [(name, m) for name, m in self.net.named_modules() if isinstance(m, IFNeuron)]

    def reset(self) -> None:
        for m in self.stateful():
            m.reset()

    def set_backend(self, backend: str) -> None:
        """'torch' or 'triton' for every neuron; anything else is one clear ValueError, before any run."""
        check_backend(backend)
        for _, neuron in self.neurons():
            neuron.backend = backend

    def record(self, on: bool = True) -> None:
        for _, neuron in self.neurons():
            neuron.record = on

    def firing_rates(self) -> dict[str, float]:
        """Spikes per neuron per step of each spiking layer over the last run (needs ``record(True)``)."""
        rates = {}
        for name, neuron in self.neurons():
            if neuron.spikes_per_step and neuron.v is not None:
                steps = sum(len(counts) for counts in neuron.spikes_per_step)
                spikes = float(sum(counts.sum() for counts in neuron.spikes_per_step))
                rates[name] = spikes / max(neuron.v.numel() * steps, 1)
        return rates

    @torch.no_grad()
    def forward(self, images: torch.Tensor, timesteps: int, chunk: int | None = None) -> torch.Tensor:
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        self.reset()
        images = images.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        chunk = chunk or default_chunk(images, timesteps)
        outputs = []
        done = 0
        while done < timesteps:
            steps = min(chunk, timesteps - done)
            self.clock.begin(steps, images.shape[0])
            with reduced_precision(images.device, self.precision):
                out = self.net(images)
            out = out[0] if isinstance(out, (tuple, list)) else out
            outputs.append(out.view(steps, images.shape[0], *out.shape[1:]))
            for observe in self.chunk_observers:
                observe(images, steps, done == 0)
            done += steps
        return torch.cat(outputs)
