"""Spiking layers for time-folded execution.

Tensors between layers are ``[T·N, C, H, W]`` (time folded into the batch), except the image's convolution
output, ``[N, C, H, W]``: the same input at every step (``ConstantInput``). Every timed layer reads the step
count T and the batch N of the chunk being run from one ``Clock`` that the runner shares with all of them
(``SpikingDetector`` sets it once per chunk), and checks its input against it: a miscount is an error, not
a silent reshape. Stateful layers carry their state across chunks (a long run can be fed in chunks); their
state is registered with its reset value (``register_memory``) and ``reset()`` restores it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from spikeyolo.engine.neuron import (check_backend, if_multistep, sequence_like, signed_memory_multistep,
                                     snm_multistep)
from spikeyolo.engine.surrogate import (if_multistep_surrogate, signed_memory_multistep_surrogate,
                                        snm_multistep_surrogate)


@dataclass
class Clock:
    """The chunk being run: ``steps`` T, ``batch`` N (None: unchecked, for a layer used on its own) and a
    ``chunk`` counter (layers applied several times per chunk count their uses against it)."""
    steps: int = 1
    batch: int | None = None
    chunk: int = 0

    def begin(self, steps: int, batch: int | None = None) -> None:
        """The next chunk: ``steps`` steps of ``batch`` images (None: unchecked)."""
        self.steps, self.batch, self.chunk = int(steps), batch, self.chunk + 1


class Timed(nn.Module):
    """A layer that needs the step count of the chunk (from its ``clock``)."""

    def __init__(self):
        super().__init__()
        self.clock = Clock()

    @property
    def timesteps(self) -> int:
        return self.clock.steps

    @timesteps.setter
    def timesteps(self, steps: int) -> None:
        """Set by hand (a layer used outside a runner): a new chunk of ``steps``, its batch unchecked."""
        self.clock.begin(steps)

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """``[T·N, ...]`` → ``[T, N, ...]`` (``[N, ...]``, a constant input, → a view repeated over T); a
        float16/bfloat16 input (a reduced-precision convolution's output) comes back float32, so that every state
        (membranes, running sums, maxima) is float32. An input of any other batch is an error."""
        steps, batch = self.clock.steps, self.clock.batch
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        if batch is not None and x.shape[0] == batch and steps > 1:
            return x.unsqueeze(0).expand(steps, *x.shape)
        if (batch is not None and x.shape[0] != steps * batch) or x.shape[0] % steps:
            raise ValueError(f"{type(self).__name__} got a batch of {x.shape[0]}, expected T·N = {steps}·"
                             f"{batch if batch is not None else 'N'}: the step count does not match the data")
        return x.view(steps, x.shape[0] // steps, *x.shape[1:])


class Stateful(Timed):
    """A timed layer that carries state over time; ``reset()`` restores every registered memory."""

    def __init__(self):
        super().__init__()
        self._memories: dict[str, object] = {}

    def register_memory(self, name: str, reset_value) -> None:
        """State ``name`` (a plain attribute) whose value after ``reset()`` is ``reset_value`` (copied)."""
        self._memories[name] = reset_value
        setattr(self, name, copy.copy(reset_value))

    def reset(self) -> None:
        for name, value in self._memories.items():
            setattr(self, name, copy.copy(value))


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
    ``neuron.signed_memory_step``), so it is refused without. Records spike counts per step when ``record``.
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
        self.surrogate: float | None = None  # sharpness of the surrogate gradient when trained (spikeyolo tune)
        self.register_memory("v", None)  # membrane (set from the first input: v0 = initial_membrane·θ)
        self.register_memory("emitted", None)  # net spikes so far (snm only)
        self.register_memory("spikes_per_step", [])  # when ``record``

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

    def _initial_v(self, step: torch.Tensor) -> torch.Tensor:
        """v0 = initial_membrane·θ, broadcastable against a step (the backends make the full state); a signed
        neuron with memory integrates from 0 (its offset enters the quantizer instead)."""
        if self.kind == "signed-snm":
            return torch.zeros((), dtype=step.dtype, device=step.device)
        theta = self.threshold.to(step.dtype)
        return self.initial_membrane * (theta.view(1, -1, *([1] * (step.dim() - 2))) if theta.dim() else theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = self.unfold(x)
        if x_seq.stride(0) == 0 and self.backend != "torch":  # a constant input, materialized for the kernel
            x_seq = sequence_like(x_seq).copy_(x_seq)
        if self.v is None:
            self.v = self._initial_v(x_seq[0])
        theta = self.threshold.to(x_seq.dtype)
        if self.snm and self.emitted is None:
            self.emitted = torch.zeros_like(self.v)
        if self.surrogate is not None and torch.is_grad_enabled():
            out = self._differentiable(x_seq, theta)
        elif self.kind == "signed-snm":
            out, self.v, self.emitted = signed_memory_multistep(x_seq, self.v, self.emitted, theta, self.negative_slope,
                                                                self.initial_membrane, self.backend, self.max_spikes)
        elif self.snm:
            out, self.v, self.emitted = snm_multistep(x_seq, self.v, self.emitted, theta, self.backend,
                                                      self.max_spikes)
        else:
            negative = theta / self.negative_slope if self.negative_slope > 0 else None
            out, self.v = if_multistep(x_seq, self.v, theta, negative, self.backend, self.max_spikes)
        if self.record:
            self.spikes_per_step.append(self._spike_counts(out, theta))
        return out.flatten(0, 1)

    def _differentiable(self, x_seq: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """The same spikes with surrogate gradients (``engine.surrogate``): for training, never in place."""
        if self.kind == "ibt":
            raise ValueError("surrogate gradients are defined for IF, SNM and signed neurons with memory, not IBT")
        if self.kind == "signed-snm":
            out, self.v, self.emitted = signed_memory_multistep_surrogate(
                x_seq, self.v, self.emitted, theta, self.negative_slope, self.initial_membrane, self.max_spikes,
                self.surrogate)
        elif self.snm:
            out, self.v, self.emitted = snm_multistep_surrogate(x_seq, self.v, self.emitted, theta, self.max_spikes,
                                                                self.surrogate)
        else:
            out, self.v = if_multistep_surrogate(x_seq, self.v, theta, self.max_spikes, self.surrogate)
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
    """

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.pool = pool
        self.register_memory("total", None)  # input summed over the steps so far
        self.register_memory("last_max", None)  # the pooled sum after the last step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cumulative = self.unfold(x).cumsum(0)  # a new tensor: added to in place
        if self.total is not None:
            cumulative.add_(self.total)
        pooled = self.pool(cumulative.flatten(0, 1))
        pooled = pooled.view(self.timesteps, -1, *pooled.shape[1:])
        if torch.is_grad_enabled() and pooled.requires_grad:  # training (spikeyolo tune): the same, out of place
            previous = pooled[:1] * 0 if self.last_max is None else self.last_max.unsqueeze(0)
            self.total, self.last_max = cumulative[-1], pooled[-1]
            return (pooled - torch.cat([previous, pooled[:-1]])).flatten(0, 1)
        out = torch.empty_like(pooled)
        torch.sub(pooled[1:], pooled[:-1], out=out[1:])
        if self.last_max is None:
            out[0].copy_(pooled[0])
        else:
            torch.sub(pooled[0], self.last_max, out=out[0])
        self.total, self.last_max = cumulative[-1], pooled[-1]
        return out.flatten(0, 1)


class ReusedMaxPool(Stateful):
    """A max-pool applied ``uses`` times per chunk (SPPF chains one pool module 3 times).

    Each application carries its own cumulative state, so each gets its own CumulativeMaxPool, taken in
    turn; a chunk that applies it another number of times is an error (its states would be mixed).
    """

    def __init__(self, pool: nn.MaxPool2d, uses: int):
        super().__init__()
        self.pools = nn.ModuleList(CumulativeMaxPool(pool) for _ in range(uses))
        self.register_memory("used", 0)  # applications in the current chunk
        self.register_memory("chunk", None)  # the clock's chunk they belong to

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chunk != self.clock.chunk:
            if self.chunk is not None and self.used != len(self.pools):
                raise ValueError(f"max-pool applied {self.used} times in a chunk, built for {len(self.pools)}")
            self.used, self.chunk = 0, self.clock.chunk
        if self.used == len(self.pools):
            raise ValueError(f"max-pool applied more than the {len(self.pools)} times it was built for in one chunk")
        pool = self.pools[self.used]
        self.used += 1
        pool.clock = self.clock  # shared already inside a detector; on its own, its pools follow it
        return pool(x)


class Accumulate(Stateful):
    """Wraps the head's last convolution: outputs the running mean of its input over steps so far."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.register_memory("total", None)
        self.register_memory("steps", 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        running = self.unfold(self.layer(x)).cumsum(0)
        if self.total is not None:
            running = running + self.total
        counts = torch.arange(self.steps + 1, self.steps + self.timesteps + 1, device=x.device, dtype=running.dtype)
        self.total, self.steps = running[-1], self.steps + self.timesteps
        return (running / counts.view(-1, *([1] * (running.dim() - 1)))).flatten(0, 1)
