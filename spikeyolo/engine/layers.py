"""Spiking layers with time as data.

A network's input is the image sequence ``[T, N, 3, H, W]`` (one still image repeated over T is a view, no copy);
the image's convolution (``ImageConv``) hands the first neurons ``[T, N, C, H, W]``, every later tensor is
``[T·N, C, H, W]`` (time folded into the batch, as ultralytics' layers need). T is never stored anywhere: a stateful
layer reads it from its input's shape — the leading dimension of a 5-D input, or the folded batch over its state's
batch N — and checks it (a miscount is an error, not a silent reshape).

State is explicit: each quantity a registered, non-persistent buffer (membrane, net spike count, running sums, the
head's step count), ``[N, ...]`` per layer, float32 whatever the convolutions run in. ``clear_state(batch)``
drops it (a new batch or image size: the next input allocates it), ``reset()`` restores every buffer in place to
its registered reset value, and between calls it is carried: the same network runs T steps in one call or in k
calls that carry the state (streaming). Nothing in a forward reads a counter, syncs with the host or branches on
values, so ``torch.compile(fullgraph=True)`` traces it whole and a CUDA graph can replay it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from spikeyolo.engine.neuron import (check_backend, fold, if_multistep, sequence_like, signed_memory_multistep,
                                     snm_multistep)
from spikeyolo.engine.surrogate import (if_multistep_surrogate, signed_memory_multistep_surrogate,
                                        snm_multistep_surrogate)

REDUCED = (torch.float16, torch.bfloat16)


def state_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype state is kept in for inputs like ``x``: float32 for float16/bfloat16 inputs, else x's own."""
    return torch.float32 if x.dtype in REDUCED else x.dtype


class Stateful(nn.Module):
    """A layer that carries state over time in registered buffers (``register_state``), reset in place."""

    def __init__(self):
        super().__init__()
        self._resets: dict[str, float | Callable[[torch.Tensor], None]] = {}
        self._batch: int | None = None  # N to allocate for, from ``clear_state`` (None: from a 5-D input)

    def register_state(self, name: str, reset: float | Callable[[torch.Tensor], None] = 0.0) -> None:
        """State ``name``, a buffer allocated on first use; ``reset()`` fills it with ``reset`` (a number, or a
        function filling the tensor in place)."""
        self.register_buffer(name, torch.empty(0), persistent=False)
        self._resets[name] = reset

    @property
    def state_shape(self) -> torch.Size | None:
        """The state's per-step shape ``[N, ...]`` (of the first registered quantity), None before allocation."""
        first = getattr(self, next(iter(self._resets)))
        return first.shape if first.numel() else None

    def clear_state(self, batch: int | None = None) -> None:
        """Drop the state; the next input (``batch`` images per step, or a 5-D input) allocates it anew."""
        for name in self._resets:
            setattr(self, name, torch.empty(0, device=getattr(self, name).device))
        self._batch = batch

    def reset(self) -> None:
        """Every state buffer back to its reset value, in place (no allocation: a captured graph stays valid)."""
        buffers = self._buffers
        for name, value in self._resets.items():
            state = buffers[name]
            if state.requires_grad:  # after a differentiable run: drop the graph
                state = buffers[name] = state.detach().clone()
            if not state.numel():
                continue
            if callable(value):
                value(state)
            else:
                state.fill_(value)

    def _allocate(self, step: torch.Tensor, names: tuple[str, ...] | None = None) -> None:
        """State buffers shaped and laid out like ``step`` (one step's tensor), float32, then reset."""
        for name in names or tuple(self._resets):
            setattr(self, name, torch.empty_like(step, dtype=state_dtype(step)))
        self.reset()

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, N, ...]`` as it is, or ``[T·N, ...]`` → ``[T, N, ...]`` with N the state's batch; allocates the state
        on its first input. A batch that does not fit the state is an error."""
        shape = self.state_shape
        if x.dim() == 5:
            seq = x
        else:
            batch = shape[0] if shape is not None else self._batch
            if batch is None:
                raise RuntimeError(f"{type(self).__name__} has no state: feed it a [T, N, C, H, W] sequence, or run "
                                   "it inside a SpikingDetector (clear_state(batch) says N)")
            if x.shape[0] % batch:
                raise ValueError(f"{type(self).__name__} got a batch of {x.shape[0]}, not T·N for its state's batch "
                                 f"N = {batch}: the data does not match the state (clear_state for a new batch)")
            seq = x.view(x.shape[0] // batch, batch, *x.shape[1:])
        if shape is None:
            self._allocate(seq[0])
        elif seq.shape[1:] != shape:
            raise ValueError(f"{type(self).__name__} got steps of shape {list(seq.shape[1:])}, its state is "
                             f"{list(shape)}: clear_state for a new batch or image size")
        return seq

    def _keep(self, name: str, value: torch.Tensor) -> None:
        """The state after a call: written into the buffer (inference), or the tensor itself (a differentiable run,
        whose graph must reach it)."""
        state = getattr(self, name)
        if value is state:
            return
        if torch.is_grad_enabled() and value.requires_grad:
            setattr(self, name, value)
        else:
            state.copy_(value)


NEURON_KINDS = {"if": (False, False), "ibt": (True, False), "snm": (False, True), "signed-snm": (True, True)}
"""kind → (signed, with memory): binary or burst IF; IBT (signed, memoryless: Spiking-YOLO); SNM (unsigned, takes
spikes back); signed with memory (leaky layers tracking the signed quantizer)."""


@dataclass(frozen=True)
class NeuronSpec:
    """What kind of neuron a layer has, in the one form the converter, the artifact, the cost meter and the report
    read: its kind, θ's shape (one per channel, or one for the layer), v0 in units of θ, α and the burst size."""
    kind: str
    channels: int
    per_channel: bool
    initial_membrane: float
    negative_slope: float = 0.0
    max_spikes: int = 1

    def __post_init__(self):
        if self.kind not in NEURON_KINDS:
            raise ValueError(f"unknown neuron kind {self.kind!r}: one of {', '.join(NEURON_KINDS)}")
        signed, _ = NEURON_KINDS[self.kind]
        if signed != (self.negative_slope > 0):
            raise ValueError(f"a {self.kind} neuron {'needs' if signed else 'takes no'} negative slope α > 0, "
                             f"got {self.negative_slope}")
        if self.max_spikes < 1 or self.channels < 1:
            raise ValueError(f"max_spikes and channels must be >= 1, got {self.max_spikes}, {self.channels}")

    @property
    def memory(self) -> bool:
        return NEURON_KINDS[self.kind][1]

    def as_dict(self) -> dict:
        return {"kind": self.kind, "channels": self.channels, "per_channel": self.per_channel,
                "initial_membrane": self.initial_membrane, "negative_slope": self.negative_slope,
                "max_spikes": self.max_spikes}

    @classmethod
    def from_dict(cls, saved: dict) -> "NeuronSpec":
        return cls(saved["kind"], int(saved["channels"]), bool(saved["per_channel"]), float(saved["initial_membrane"]),
                   float(saved["negative_slope"]), int(saved["max_spikes"]))


class IFNeuron(Stateful):
    """Integrate-and-fire neuron, reset by subtraction; signed when ``negative_slope`` α > 0.

    ``threshold`` is θ per layer (scalar) or per output channel; the membrane starts at
    ``initial_membrane``·θ (½ for QCFS conversion); ``max_spikes`` > 1 allows bursts of up to that
    many spikes per step; ``snm`` gives it a memory of its net spike count: negative spikes take
    back earlier ones (ReLU layers), or track the signed quantizer (leaky layers). A signed neuron
    without memory is the classic IBT neuron (negative spike when v ≤ −θ/α), exact only with
    ``initial_membrane`` 0: a signed neuron starting above zero needs memory (see
    ``neuron.signed_memory_step``), so it is refused without. State: ``v`` (membrane) and, with memory,
    ``emitted`` (net spikes so far), float32; inputs of float16/bfloat16 give spikes of that dtype.
    Records spike counts per step when ``record`` (an eager-only diagnostic: a list, cleared by ``reset``).
    """

    def __init__(self, threshold: torch.Tensor, initial_membrane: float = 0.5, negative_slope: float = 0.0,
                 backend: str = "torch", max_spikes: int = 1, snm: bool = False):
        super().__init__()
        if negative_slope > 0 and initial_membrane != 0 and not snm:
            raise ValueError(f"a signed neuron with initial membrane {initial_membrane}θ needs memory (snm=True): "
                             "without it negative spikes are one level off or ping-pong with positive ones")
        threshold = torch.as_tensor(threshold)
        threshold = threshold if threshold.is_floating_point() else threshold.float()
        self.register_buffer("threshold", threshold.detach().clone())
        self.initial_membrane = float(initial_membrane)
        self.negative_slope = float(negative_slope)
        self.max_spikes = int(max_spikes)
        self.backend = check_backend(backend)
        self.snm = bool(snm)
        self.record = False
        self.spikes_per_step: list[torch.Tensor] = []
        self.surrogate: float | None = None  # sharpness of the surrogate gradient when trained (spikeyolo tune)
        self.register_state("v", self._initial_v)  # membrane: v0 = initial_membrane·θ
        self.register_state("emitted", 0.0)  # net spikes so far (with memory only; else never allocated)

    @classmethod
    def from_spec(cls, spec: NeuronSpec, threshold: torch.Tensor | None = None, backend: str = "torch") -> "IFNeuron":
        """The neuron a spec describes (θ of the spec's shape, ones until its state is loaded, if not given)."""
        if threshold is None:
            threshold = torch.ones(spec.channels) if spec.per_channel else torch.tensor(1.0)
        return cls(threshold, spec.initial_membrane, spec.negative_slope, backend, spec.max_spikes, spec.memory)

    @property
    def spec(self) -> NeuronSpec:
        return NeuronSpec(self.kind, self.threshold.numel(), self.threshold.dim() > 0, self.initial_membrane,
                          self.negative_slope, self.max_spikes)

    @property
    def kind(self) -> str:
        """'if' (binary or burst), 'ibt' (signed, memoryless), 'snm' (unsigned with memory) or 'signed-snm'."""
        signed = self.negative_slope > 0
        return next(kind for kind, form in NEURON_KINDS.items() if form == (signed, self.snm))

    def _initial_v(self, v: torch.Tensor) -> None:
        """v ← v0 = initial_membrane·θ in place; a signed neuron with memory integrates from 0 (its offset enters the
        quantizer instead)."""
        if self.snm and self.negative_slope > 0:  # signed-snm
            v.zero_()
            return
        theta = self.threshold.to(v.dtype)
        v.copy_(self.initial_membrane * (theta.view(1, -1, *([1] * (v.dim() - 2))) if theta.dim() else theta))

    def _allocate(self, step: torch.Tensor, names: tuple[str, ...] | None = None) -> None:
        super()._allocate(step, ("v", "emitted") if self.snm else ("v",))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = self.unfold(x)
        theta = self.threshold.to(self.v.dtype)
        if self.surrogate is not None and torch.is_grad_enabled():
            out = self._differentiable(x_seq, theta)
        elif self.kind == "signed-snm":
            out, v, emitted = signed_memory_multistep(x_seq, self.v, self.emitted, theta, self.negative_slope,
                                                      self.initial_membrane, self.backend, self.max_spikes)
            self._keep("v", v), self._keep("emitted", emitted)
        elif self.snm:
            out, v, emitted = snm_multistep(x_seq, self.v, self.emitted, theta, self.backend, self.max_spikes)
            self._keep("v", v), self._keep("emitted", emitted)
        else:
            negative = theta / self.negative_slope if self.negative_slope > 0 else None
            out, v = if_multistep(x_seq, self.v, theta, negative, self.backend, self.max_spikes)
            self._keep("v", v)
        if self.record:
            self.spikes_per_step.append(self._spike_counts(out, theta))
        out = fold(out)
        return out.to(x.dtype) if x.dtype in REDUCED and out.dtype != x.dtype else out

    def reset(self) -> None:
        super().reset()
        self.spikes_per_step = []

    def _differentiable(self, x_seq: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """The same spikes with surrogate gradients (``engine.surrogate``): for training, never in place."""
        if self.kind == "ibt":
            raise ValueError("surrogate gradients are defined for IF, SNM and signed neurons with memory, not IBT")
        x_seq = x_seq.to(theta.dtype)
        if self.kind == "signed-snm":
            out, v, emitted = signed_memory_multistep_surrogate(
                x_seq, self.v, self.emitted, theta, self.negative_slope, self.initial_membrane, self.max_spikes,
                self.surrogate)
        elif self.snm:
            out, v, emitted = snm_multistep_surrogate(x_seq, self.v, self.emitted, theta, self.max_spikes,
                                                      self.surrogate)
        else:
            (out, v), emitted = if_multistep_surrogate(x_seq, self.v, theta, self.max_spikes, self.surrogate), None
        self._keep("v", v)
        if emitted is not None:
            self._keep("emitted", emitted)
        return out

    def _spike_counts(self, out: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Spikes emitted per step (a burst of n counts n)."""
        per_step = tuple(range(1, out.dim()))  # sum over all but time, in any memory layout
        if self.max_spikes == 1:
            return out.ne(0).sum(per_step)
        theta = theta.view(1, 1, -1, *([1] * (out.dim() - 3))) if theta.dim() else theta
        return (out.abs() / theta).round().sum(per_step)

    def extra_repr(self) -> str:
        kind = self.kind.upper() + (f" α={self.negative_slope}" if self.negative_slope > 0 else "")
        burst = f", burst≤{self.max_spikes}" if self.max_spikes > 1 else ""
        return f"{kind}, channels={self.threshold.numel()}, v0={self.initial_membrane}θ{burst}, backend={self.backend}"


class CumulativeMaxPool(Stateful):
    """Spiking max-pool: emits the increments of max-pool(cumulative input).

    Its cumulative output equals max-pool of the cumulative input at every step, so its rate is
    exactly the max-pooled rate (a plain max-pool of spikes would OR them and overestimate).
    State: the input summed so far (``total``) and its pooled value (``last_max``), both from 0.
    """

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.pool = pool
        self.register_state("total")
        self.register_state("last_max")

    def _allocate(self, step: torch.Tensor, names: tuple[str, ...] | None = None) -> None:
        self.total = torch.empty_like(step, dtype=state_dtype(step))
        self.last_max = torch.empty_like(self.pool(self.total))
        self.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = self.unfold(x)
        steps = x_seq.shape[0]
        # the input summed over time, in a buffer in x's layout (cumsum's own output would be NCHW, and so every
        # pool and concatenation after it), from the state's sum so far
        cumulative = sequence_like(x_seq, self.total.dtype).copy_(x_seq).cumsum_(0).add_(self.total)
        pooled = self.pool(fold(cumulative))
        pooled = pooled.view(steps, -1, *pooled.shape[1:])
        out = pooled - torch.cat([self.last_max.unsqueeze(0), pooled[:-1]])  # the increments (from last_max)
        self._keep("total", cumulative[-1])
        self._keep("last_max", pooled[-1])
        out = fold(out)
        return out.to(x.dtype) if x.dtype in REDUCED else out


class ReusedMaxPool(nn.Module):
    """A max-pool applied ``uses`` times per forward (SPPF chains one pool module 3 times).

    Each application carries its own cumulative state, so each gets its own CumulativeMaxPool, taken in
    turn (the turn wraps after ``uses``: every forward of the network starts at the first; ``reset`` restores it).
    """

    def __init__(self, pool: nn.MaxPool2d, uses: int):
        super().__init__()
        self.pools = nn.ModuleList(CumulativeMaxPool(pool) for _ in range(uses))
        self.turn = 0

    def reset(self) -> None:
        self.turn = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.pools[self.turn]
        self.turn = (self.turn + 1) % len(self.pools)
        return pool(x)


class Accumulate(Stateful):
    """Wraps the head's last convolution: outputs the running mean of its input over the steps so far (float32).
    State: the running sum (``total``) and the steps it holds (``steps``, a 0-d tensor: no host counter)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.register_state("total")
        self.register_state("steps")

    def _allocate(self, step: torch.Tensor, names: tuple[str, ...] | None = None) -> None:
        self.total = torch.empty_like(step, dtype=state_dtype(step))
        self.steps = torch.empty((), dtype=self.total.dtype, device=step.device)
        self.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        running = self.unfold(self.layer(x))
        running = running.cumsum(0, dtype=self.total.dtype).add_(self.total)  # a new tensor: added to in place
        steps = running.shape[0]
        counts = torch.arange(1, steps + 1, device=running.device, dtype=running.dtype).add_(self.steps)
        self._keep("total", running[-1])
        self.steps.add_(steps)  # never differentiated: a count
        return fold(running / counts.view(-1, *([1] * (running.dim() - 1))))
