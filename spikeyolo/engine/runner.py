"""Running a converted detector: time folded into the batch, detections at every timestep."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from spikeyolo.engine.layers import IFNeuron, ReusedMaxPool, Stateful
from spikeyolo.engine.neuron import check_backend
from spikeyolo.ultra import keep_head_anchors


class ImageConv(nn.Module):
    """The image's convolution. Its input is the image sequence ``[T, N, 3, H, W]``: a still image repeated over T
    (a view whose steps share memory) is convolved once and its output ``[N, ...]`` stands for every step (a view
    again: exact, and no copy); a sequence of different frames (one per step) is convolved frame by frame. It
    returns ``[T, N, C, H', W']``, from which the first neurons read T. A plain ``[N, 3, H, W]`` batch passes as a
    layer would (the cost meter's and the depth finder's twin graphs feed one)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            return self.layer(x)
        steps, batch = x.shape[:2]
        if x.stride(0) == 0:
            out = self.layer(x[0])
            return out.unsqueeze(0).expand(steps, *out.shape)
        out = self.layer(x.flatten(0, 1))
        return out.view(steps, batch, *out.shape[1:])


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


_LONG_RUNS = {"from": None}  # T from which forward shows a bar over its steps (None: silent, the library default)


def show_long_runs(from_timesteps: int | None) -> None:
    """Show a progress bar (stderr) over the steps of every forward of at least ``from_timesteps`` steps: a run of
    thousands of steps takes minutes inside one call. The command line turns it on; None turns it off."""
    _LONG_RUNS["from"] = from_timesteps


def _long_run_bar(timesteps: int):
    if _LONG_RUNS["from"] is None or timesteps < _LONG_RUNS["from"]:
        return None
    from tqdm import tqdm

    return tqdm(total=timesteps, desc=f"SNN, T={timesteps}", unit="step", leave=False)


def default_chunk(images: torch.Tensor, timesteps: int) -> int:
    """Steps per call: all of them on a GPU; on the CPU as many as keep the folded batch ≤ CPU_FOLDED_BATCH.

    Measured with ``spikeyolo benchmark`` (docs/results.md): at batch 16, T = 8 on 2 cores, one step at a time ran
    1.7x faster than all 8 folded (a 128-image batch per convolution); at batch 1 folding all 8 ran 1.7x faster.
    """
    if images.is_cuda:
        return timesteps
    return max(1, min(timesteps, CPU_FOLDED_BATCH // max(images.shape[0], 1)))


class SpikingDetector(nn.Module):
    """A converted ultralytics detector: ``forward(images, timesteps)`` → predictions at every step.

    Returns ``[T, N, 4 + nc, anchors]``: row t is the head's running output after t+1 steps, decoded by the
    ultralytics Detect head (boxes in input pixels, class probabilities). ``chunk`` runs the steps in slices of
    that many (default: ``default_chunk``), each slice one call of ``run_steps`` on the image sequence
    ``[steps, N, 3, H, W]``: T reaches the layers as that shape, the state lives in the layers' buffers.
    ``reset=True`` (default) starts from reset membranes; ``reset=False`` (``stream``) carries the state of the
    previous call: the steps of this call continue those (a video or an event stream into one running network).
    A new batch size or image size always starts from a new state. ``compile()`` runs every slice through
    ``torch.compile(fullgraph=True)`` once the state exists. Convolutions run channels-last (NHWC) unless
    ``channels_last=False``; in float32 unless ``set_precision('fp16' | 'bf16')`` (weights converted once; neurons
    take the reduced-precision currents and emit spikes in that dtype, membranes and the head's sums stay float32).
    """

    def __init__(self, net: nn.Module, meta: dict | None = None, channels_last: bool = True):
        super().__init__()
        self.net = net
        self.meta = meta or {}
        self.precision = "fp32"
        self.chunk_observers: list = []  # called (images, steps, first) after each chunk (the cost meter's event graph)
        self._geometry: tuple | None = None  # the images the state was allocated for
        self._compiled = None
        self._float32_weights: dict[str, torch.Tensor] | None = None  # set aside by set_precision
        self.use_channels_last(channels_last)

    def set_precision(self, precision: str) -> None:
        """Convolutions in 'fp32' (default), 'fp16' or 'bf16': their weights converted once, here (float32 kept
        aside: back to 'fp32' is exact), the images fed in that dtype; neurons take the reduced currents and emit
        spikes in that dtype; membranes, the head's sums and its decoding stay float32."""
        self.precision = check_precision(precision)
        if self._float32_weights is None:
            if precision == "fp32":  # never reduced: the weights are as they were (no copy kept)
                return
            self._float32_weights = {name: tensor.detach().clone() for name, tensor in self._convolution_tensors()}
        dtype = PRECISIONS[precision]
        for name, tensor in self._convolution_tensors():
            kept = self._float32_weights[name]
            tensor.data = kept.to(tensor.device, dtype or kept.dtype).contiguous(
                memory_format=torch.channels_last if tensor.dim() == 4 and self.channels_last else torch.contiguous_format)

    @property
    def dtype(self) -> torch.dtype | None:
        """The reduced dtype of the convolutions and of the spikes between layers (None: the weights' own)."""
        return PRECISIONS[self.precision]

    def _convolution_tensors(self):
        """(name, weight or bias) of every convolution but the head's box decoding (DFL), which stays float32."""
        decoding = {id(m) for head in self.net.modules() if type(head).__name__ == "DFL" for m in head.modules()}
        for module_name, module in self.net.named_modules():
            if isinstance(module, nn.Conv2d) and id(module) not in decoding:
                for name, tensor in module.named_parameters(recurse=False):
                    yield f"{module_name}.{name}", tensor

    def use_channels_last(self, on: bool = True) -> None:
        """Store the convolution weights, and feed the images, channels-last (on) or NCHW (off)."""
        self.channels_last = bool(on)
        self.net.to(memory_format=torch.channels_last if on else torch.contiguous_format)
        self._geometry = None

    @property
    def names(self) -> dict:
        return self.net.names

    def stateful(self) -> list[Stateful]:
        return [m for m in self.net.modules() if isinstance(m, Stateful)]

    def neurons(self) -> list[tuple[str, IFNeuron]]:
        return [(name, m) for name, m in self.net.named_modules() if isinstance(m, IFNeuron)]

    def init_state(self, images: torch.Tensor) -> None:
        """A new state for batches like ``images`` [N, 3, H, W]: dropped now, allocated by the next run's first
        slice (each layer from its own input's shape)."""
        for layer in self.stateful():
            layer.clear_state(images.shape[0])
        self.reset()  # the max-pools' turns
        self._geometry = None  # the next forward starts anew too: its first slice allocates (eagerly)

    def reset(self) -> None:
        """Every state back to its reset value, in place (membranes v0, counts and sums 0)."""
        for module in self.net.modules():
            if isinstance(module, (Stateful, ReusedMaxPool)):
                module.reset()

    def _geometry_of(self, images: torch.Tensor) -> tuple:
        return tuple(images.shape), images.device, self.channels_last

    def set_backend(self, backend: str) -> None:
        """'torch' or 'triton' for every neuron; anything else is one clear ValueError, before any run."""
        check_backend(backend)
        for _, neuron in self.neurons():
            neuron.backend = backend
        self._compiled = None

    def record(self, on: bool = True) -> None:
        for _, neuron in self.neurons():
            neuron.record = on

    def firing_rates(self) -> dict[str, float]:
        """Spikes per neuron per step of each spiking layer over the last run (needs ``record(True)``)."""
        rates = {}
        for name, neuron in self.neurons():
            if neuron.spikes_per_step and neuron.v.numel():
                steps = sum(len(counts) for counts in neuron.spikes_per_step)
                spikes = float(sum(counts.sum() for counts in neuron.spikes_per_step))
                rates[name] = spikes / max(neuron.v.numel() * steps, 1)
        return rates

    def compile(self, **options) -> "SpikingDetector":
        """Run every slice through ``torch.compile(run_steps, fullgraph=True)`` (options: mode, backend, …); the first
        slice after a new state runs eagerly (it allocates the state)."""
        self._compiled = torch.compile(self.run_steps, fullgraph=True, dynamic=False, **options)
        return self

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    @contextlib.contextmanager
    def eager(self):
        """Run eagerly inside the block (forward hooks see every layer), compiled again after it."""
        compiled, self._compiled = self._compiled, None
        try:
            yield self
        finally:
            self._compiled = compiled

    def run_steps(self, sequence: torch.Tensor) -> torch.Tensor:
        """The network on an image sequence ``[T, N, 3, H, W]`` from the state as it is (updated in place):
        → ``[T, N, 4 + nc, anchors]``. A function of its input's shape and the state: no counter, no host sync."""
        out = self.net(sequence if self.dtype in (None, sequence.dtype) else sequence.to(self.dtype))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.view(sequence.shape[0], sequence.shape[1], *out.shape[1:])

    @torch.no_grad()
    def forward(self, images: torch.Tensor, timesteps: int, chunk: int | None = None,
                reset: bool = True) -> torch.Tensor:
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        images = (images if self.dtype is None else images.to(self.dtype)).contiguous(
            memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        fresh = self._geometry != self._geometry_of(images)
        if fresh:
            self.init_state(images)
            self._geometry = self._geometry_of(images)
        elif reset:
            self.reset()
        chunk = chunk or default_chunk(images, timesteps)
        outputs, done, bar = [], 0, _long_run_bar(timesteps)
        while done < timesteps:
            steps = min(chunk, timesteps - done)
            sequence = images.unsqueeze(0).expand(steps, *images.shape)
            run = self.run_steps
            if self._compiled is not None and not (fresh and done == 0):  # the first slice of a new state allocates it
                keep_head_anchors(self.net, steps * images.shape[0])
                run = self._compiled
            outputs.append(run(sequence))
            for observe in self.chunk_observers:
                observe(images, steps, (fresh or reset) and done == 0)
            done += steps
            if bar is not None:
                bar.update(steps)
        if bar is not None:
            bar.close()
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]

    def stream(self, images: torch.Tensor, timesteps: int, chunk: int | None = None) -> torch.Tensor:
        """``timesteps`` more steps of ``images`` on the state of the previous call (a new one for new shapes)."""
        return self(images, timesteps, chunk, reset=False)
