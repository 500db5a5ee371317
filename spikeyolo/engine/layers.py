"""Stateful spiking layers for time-folded execution.

Tensors between layers are ``[T·N, C, H, W]`` (time folded into the batch); each stateful layer
unfolds the time axis with its ``timesteps``, carries its state across calls (so a long run can be
fed in chunks) and is cleared by ``reset()``.
"""
from __future__ import annotations

import torch
from torch import nn

from spikeyolo.engine.neuron import check_backend, if_multistep, signed_memory_multistep, snm_multistep


class Stateful(nn.Module):
    """Base of the layers that carry state over time."""

    timesteps: int = 1

    def reset(self) -> None:
        raise NotImplementedError

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """``[T·N, ...]`` → ``[T, N, ...]``; a float16/bfloat16 input (a reduced-precision convolution's
        output) comes back float32, so that every state (membranes, running sums, maxima) is float32."""
        if x.shape[0] % self.timesteps:
            raise ValueError(f"batch {x.shape[0]} is not a multiple of timesteps {self.timesteps}")
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.view(self.timesteps, x.shape[0] // self.timesteps, *x.shape[1:])


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
        self.v: torch.Tensor | None = None
        self.emitted: torch.Tensor | None = None  # net spikes so far (snm only)
        self.spikes_per_step: list[torch.Tensor] = []

    def reset(self) -> None:
        self.v = self.emitted = None
        self.spikes_per_step = []

    @property
    def kind(self) -> str:
        """'if' (binary or burst), 'ibt' (signed, memoryless), 'snm' (unsigned with memory) or 'signed-snm'."""
        signed = self.negative_slope > 0
        return {(False, False): "if", (True, False): "ibt", (False, True): "snm", (True, True): "signed-snm"}[
            (signed, self.snm)]

    def _initial_v(self, step: torch.Tensor) -> torch.Tensor:
        """v0 = initial_membrane·θ, broadcastable against a step (the backends make the full state); a signed
        neuron with memory integrates from 0 (its offset enters the quantizer instead)."""
        if self.kind == "signed-snm":
            return torch.zeros((), dtype=step.dtype, device=step.device)
        theta = self.threshold.to(step.dtype)
        return self.initial_membrane * (theta.view(1, -1, *([1] * (step.dim() - 2))) if theta.dim() else theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = self.unfold(x)
        if self.v is None:
            self.v = self._initial_v(x_seq[0])
        theta = self.threshold.to(x_seq.dtype)
        if self.snm and self.emitted is None:
            self.emitted = torch.zeros_like(self.v)
        if self.kind == "signed-snm":
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
        self.total: torch.Tensor | None = None
        self.last_max: torch.Tensor | None = None

    def reset(self) -> None:
        self.total = self.last_max = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cumulative = self.unfold(x).cumsum(0)
        if self.total is not None:
            cumulative = cumulative + self.total
        pooled = self.pool(cumulative.flatten(0, 1))
        pooled = pooled.view(self.timesteps, -1, *pooled.shape[1:])
        before = torch.zeros_like(pooled[:1]) if self.last_max is None else self.last_max.unsqueeze(0)
        out = pooled - torch.cat([before, pooled[:-1]])
        self.total, self.last_max = cumulative[-1], pooled[-1]
        return out.flatten(0, 1)


class ReusedMaxPool(Stateful):
    """A max-pool applied ``uses`` times per forward (SPPF chains one pool module 3 times).

    Each application carries its own cumulative state, so each gets its own CumulativeMaxPool,
    taken in turn; sharing one would mix the state of the three pools.
    """

    def __init__(self, pool: nn.MaxPool2d, uses: int):
        super().__init__()
        self.pools = nn.ModuleList(CumulativeMaxPool(pool) for _ in range(uses))
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0
        for pool in self.pools:
            pool.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.pools[self.calls % len(self.pools)]
        self.calls += 1
        pool.timesteps = self.timesteps
        return pool(x)


class Accumulate(Stateful):
    """Wraps the head's last convolution: outputs the running mean of its input over steps so far."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.total: torch.Tensor | None = None
        self.steps = 0

    def reset(self) -> None:
        self.total, self.steps = None, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        running = self.unfold(self.layer(x)).cumsum(0)
        if self.total is not None:
            running = running + self.total
        counts = torch.arange(self.steps + 1, self.steps + self.timesteps + 1, device=x.device, dtype=running.dtype)
        self.total, self.steps = running[-1], self.steps + self.timesteps
        return (running / counts.view(-1, *([1] * (running.dim() - 1)))).flatten(0, 1)
