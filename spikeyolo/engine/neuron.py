"""Integrate-and-fire neurons with reset by subtraction, as pure functions over time.

Multi-step contract (as SpikingJelly's): inputs are ``[T, ...]``; the neuron loops over T, carrying
the membrane ``v``. A spike at step t is emitted when v ≥ θ (v −= θ); a signed neuron with an
imbalanced threshold (IBT) also emits a negative spike when v ≤ −θ/α (v += θ/α). The output is
the spike times its amplitude θ, so the rate code reproduces ReLU (and α·x below zero with IBT).
With ``max_spikes`` D > 1 (burst spikes) a step emits n = min(D, floor(v/θ)) spikes at once.

The signed neuron with memory (SNM, Wang et al., IJCAI 2022) also remembers how many spikes it has
emitted, m, and takes earlier spikes back with negative ones: k = clamp(floor(v/θ), −min(m, D), D)
spikes per step, v −= kθ, m += k. Its running output then stays the floor of its running input
(≥ 0), which removes most of the unevenness error of deep networks at few timesteps.

Signed layers (leaky-ReLU) with memory track the signed QCFS quantizer the same way
(``signed_memory_step``): this is how a leaky layer reproduces its QCFS twin exactly, which a
memoryless IBT neuron cannot do once its membrane starts above zero (derivation there).

Two backends compute the same thing: ``torch`` (the reference, any device) and ``triton``
(one fused kernel launch for all T, CUDA; see spikeyolo.engine.triton_if).
"""
from __future__ import annotations

import importlib.util
import threading
import warnings
from typing import Callable

import torch

from spikeyolo.device import torch_device


def _per_channel(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-channel [C] tensor against a [N, C, ...] step tensor."""
    if value.dim() == 0:
        return value
    return value.view(1, -1, *([1] * (like.dim() - 2)))


SpikeHook = Callable[[torch.Tensor, torch.Tensor, object, object], torch.Tensor]
"""``spike(u, count, low, high)`` → the count a step emits: the identity in inference; the surrogate-gradient twin
(``engine.surrogate``) returns the same count with the gradient of a smooth staircase of the scaled membrane ``u``
between ``low`` and ``high``. The step functions below are the one definition of each neuron kind: the reference
loops run them, the surrogate twin runs them with its hook, and the in-place torch and fused Triton backends are
tested against them."""


def if_step(x: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor,
            negative_threshold: torch.Tensor | None = None, max_spikes: int = 1,
            spike: SpikeHook | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: integrate ``x``, fire, reset by subtraction. Returns (output, new v)."""
    theta = _per_channel(threshold, x)
    v = v + x
    if max_spikes == 1:
        fire = (v >= theta).to(x.dtype)
    else:
        fire = torch.clamp(torch.floor(v / theta), 0, max_spikes)
    if spike is not None:
        fire = spike(v / theta, fire, 0.0, max_spikes)
    out = fire * theta
    v = v - out
    if negative_threshold is not None:
        if spike is not None:
            raise ValueError("surrogate gradients are defined for IF, SNM and signed neurons with memory, not IBT")
        neg_theta = _per_channel(negative_threshold, x)
        if max_spikes == 1:
            fire_neg = (v <= -neg_theta).to(x.dtype)
        else:
            fire_neg = torch.clamp(torch.floor(-(v / neg_theta)), 0, max_spikes)
        out = out - fire_neg * theta
        v = v + fire_neg * neg_theta
    return out, v


def if_multistep_reference(x_seq: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor,
                           negative_threshold: torch.Tensor | None = None,
                           max_spikes: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``if_step`` looped over time: the readable definition the backends are tested against."""
    out = sequence_like(x_seq)
    for t in range(x_seq.shape[0]):
        out[t], v = if_step(x_seq[t], v, threshold, negative_threshold, max_spikes)
    return out, v


def sequence_like(x_seq: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialized ``[T, ...]`` buffer (of ``dtype``, default x's) whose steps are dense and each laid out like
    ``x_seq[0]`` (also when ``x_seq`` is a constant input expanded over time, whose steps share memory). 4-D steps get
    the canonical strides of their layout (channels-last or NCHW): a convolution's output for one image may carry an
    arbitrary batch stride, which would make later concatenations fall back to NCHW and every next convolution copy."""
    dtype = dtype or x_seq.dtype
    step = x_seq[0]
    if step.dim() == 4:
        channels_last = step.is_contiguous(memory_format=torch.channels_last) and not step.is_contiguous()
        folded = torch.empty((x_seq.shape[0] * step.shape[0], *step.shape[1:]), dtype=dtype, device=step.device,
                             memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        return folded.view(x_seq.shape)
    if x_seq.stride(0) != 0:
        return torch.empty_like(x_seq, dtype=dtype)
    step = torch.empty_like(step, dtype=dtype)
    return torch.empty(x_seq.shape[0] * step.numel(), dtype=dtype, device=step.device).as_strided(
        x_seq.shape, (step.numel(), *step.stride()))


def fold(seq: torch.Tensor) -> torch.Tensor:
    """``[T, N, ...]`` → ``[T·N, ...]`` with the canonical strides of its layout: flattening two size-1 dimensions
    leaves an arbitrary batch stride, with which concatenations of channel slices (C2f) fall back to NCHW and every
    next convolution copies its input back to channels-last."""
    flat = seq.flatten(0, 1)
    if flat.dim() == 4 and flat.shape[0] == 1 and not flat.is_contiguous() \
            and flat.is_contiguous(memory_format=torch.channels_last):
        channels, height, width = flat.shape[1:]
        flat = flat.as_strided(flat.shape, (height * width * channels, 1, width * channels, channels))
    return flat


def state_like(state: torch.Tensor, step: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The state to update in place: ``state`` itself when it is one step's full tensor of ``dtype`` (the layer's
    buffer: carried to the next call), else a new one in the step's layout holding it (a broadcast initial value)."""
    if state.shape == step.shape and state.dtype == dtype:
        return state
    return torch.empty_like(step, dtype=dtype).copy_(state)


def _state_dtype(x_seq: torch.Tensor) -> torch.dtype:
    """Membranes and counts are float32 for float16/bfloat16 inputs, else the input's dtype."""
    return torch.float32 if x_seq.dtype in (torch.float16, torch.bfloat16) else x_seq.dtype


def if_multistep_torch(x_seq: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor,
                       negative_threshold: torch.Tensor | None = None,
                       max_spikes: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch backend: ``x_seq`` [T, N, C, ...] → (outputs [T, N, C, ...], final v).

    The same float operations as ``if_step``, done in place into preallocated buffers (four passes
    per step, no allocation), which is what makes it fast on the CPU. ``v``, when it is one step's full
    tensor (a layer's state), is updated in place; float16/bfloat16 inputs are integrated into float32.
    """
    dtype = _state_dtype(x_seq)
    theta = _per_channel(threshold.to(dtype), x_seq[0])
    neg_theta = None if negative_threshold is None else _per_channel(negative_threshold.to(dtype), x_seq[0])
    v = state_like(v, x_seq[0], dtype)
    out = sequence_like(x_seq, dtype)
    fired = torch.empty_like(v) if neg_theta is not None else None
    neg_limit = -neg_theta if neg_theta is not None else None  # once, not once per step
    for t in range(x_seq.shape[0]):
        v.add_(x_seq[t])
        step = out[t]
        if max_spikes == 1:
            torch.ge(v, theta, out=step)  # 1.0 where it fires, else 0.0
        else:
            torch.div(v, theta, out=step).floor_().clamp_(0, max_spikes)
        step.mul_(theta)
        v.sub_(step)
        if neg_theta is not None:
            if max_spikes == 1:
                torch.le(v, neg_limit, out=fired)
            else:
                torch.div(v, neg_theta, out=fired).neg_().floor_().clamp_(0, max_spikes)
            step.addcmul_(fired, theta, value=-1.0)
            v.addcmul_(fired, neg_theta)
    return out, v


def snm_step(x: torch.Tensor, v: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
             max_spikes: int = 1, spike: SpikeHook | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the signed neuron with memory. Returns (output, new v, new emitted)."""
    theta = _per_channel(threshold, x)
    v = v + x
    count = torch.floor(v / theta).clamp(max=max_spikes)
    low = -emitted.clamp(max=max_spikes)
    count = torch.maximum(count, low)
    if spike is not None:
        count = spike(v / theta, count, low, max_spikes)
    out = count * theta
    return out, v - out, emitted + count


def snm_multistep_reference(x_seq: torch.Tensor, v: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
                            max_spikes: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``snm_step`` looped over time: the definition the SNM backends are tested against."""
    out = sequence_like(x_seq)
    for t in range(x_seq.shape[0]):
        out[t], v, emitted = snm_step(x_seq[t], v, emitted, threshold, max_spikes)
    return out, v, emitted


def _memory_buffers(x_seq: torch.Tensor, v: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor):
    """(θ broadcast, the membrane, the net count, the output buffer, one scratch step) of a neuron with memory, in
    x's layout; a layer's own state tensors are updated in place."""
    dtype = _state_dtype(x_seq)
    v = state_like(v, x_seq[0], dtype)
    return (_per_channel(threshold.to(dtype), x_seq[0]), v, state_like(emitted, x_seq[0], dtype),
            sequence_like(x_seq, dtype), torch.empty_like(v))


def snm_multistep_torch(x_seq: torch.Tensor, v: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
                        max_spikes: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Torch backend of the SNM: ``snm_step``'s float operations in place into preallocated buffers."""
    theta, v, emitted, out, floor = _memory_buffers(x_seq, v, emitted, threshold)
    for t in range(x_seq.shape[0]):
        v.add_(x_seq[t])
        step = out[t]
        torch.div(v, theta, out=step).floor_().clamp_(max=max_spikes)
        torch.clamp(emitted, max=max_spikes, out=floor).neg_()
        torch.maximum(step, floor, out=step)
        emitted.add_(step)
        step.mul_(theta)
        v.sub_(step)
    return out, v, emitted


def signed_memory_step(x: torch.Tensor, s: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
                       negative_slope: float, offset: float, max_spikes: int = 1, spike: SpikeHook | None = None):
    """One step of the signed neuron with memory (leaky-ReLU layers). Returns (output, new s, new emitted).

    ``s`` is the input integrated so far (it starts at 0), ``emitted`` the net spike count m. The
    neuron moves its running output m·θ towards the signed QCFS quantizer of its running input,
    q(s) = floor(y/θ + φ) with y = s (s ≥ 0) or α·s (s < 0) and φ = ``offset`` (½ for QCFS),
    by at most D spikes per step: k = clamp(q(s) − m, −D, D). Hence with D = L and θ = λ/L one step
    gives QCFS's λ·clip(floor(y·L/λ + ½)/L, −1, 1) exactly, and binary neurons (D = 1, θ = λ) fed a
    constant input give it at T = L (the quantizer moves by at most one level per step until it clips).

    Why memory: a memoryless IBT neuron with v0 = φ·θ fires its first positive spike at s ≥ (1 − φ)θ and
    must fire its first negative one at α·s < −φ·θ, so its negative limit lies at v < φθ − φθ/α
    (−4.5θ for φ = ½, α = 0.1; the classic −θ/α is one level off). A negative spike adds θ/α to v,
    which then lands up to φθ + φθ/α (5.5θ) ≥ θ: the next step fires positive spikes for an input that
    is negative. Only with φ = 0 (the classic IBT, limit −θ/α) is the memoryless neuron both exact
    (truncation) and stable; with φ > 0 the neuron must know which side of zero its output is on.
    """
    theta = _per_channel(threshold, x)
    s = s + x
    scaled = torch.where(s < 0, s * negative_slope, s)
    count = torch.clamp(torch.floor(scaled / theta + offset) - emitted, -max_spikes, max_spikes)
    if spike is not None:
        count = spike(scaled / theta + offset - emitted, count, -max_spikes, max_spikes)
    return count * theta, s, emitted + count


def signed_memory_multistep_reference(x_seq: torch.Tensor, s: torch.Tensor, emitted: torch.Tensor,
                                      threshold: torch.Tensor, negative_slope: float, offset: float,
                                      max_spikes: int = 1):
    """``signed_memory_step`` looped over time: the definition its backends are tested against."""
    out = sequence_like(x_seq)
    for t in range(x_seq.shape[0]):
        out[t], s, emitted = signed_memory_step(x_seq[t], s, emitted, threshold, negative_slope, offset, max_spikes)
    return out, s, emitted


def signed_memory_multistep_torch(x_seq: torch.Tensor, s: torch.Tensor, emitted: torch.Tensor,
                                  threshold: torch.Tensor, negative_slope: float, offset: float,
                                  max_spikes: int = 1):
    """Torch backend of the signed neuron with memory: ``signed_memory_step``'s float operations in place."""
    theta, s, emitted, out, scaled = _memory_buffers(x_seq, s, emitted, threshold)
    for t in range(x_seq.shape[0]):
        s.add_(x_seq[t])
        step = out[t]
        torch.where(s < 0, torch.mul(s, negative_slope, out=scaled), s, out=scaled)
        torch.div(scaled, theta, out=step).add_(offset).floor_().sub_(emitted).clamp_(-max_spikes, max_spikes)
        emitted.add_(step)
        step.mul_(theta)
    return out, s, emitted


def default_backend(device: torch.device | str | int) -> str:
    """The backend a device runs unless told otherwise: 'triton' (the fused kernel) on CUDA, else 'torch'."""
    cuda = torch_device(device).type == "cuda"
    return "triton" if cuda and importlib.util.find_spec("triton") is not None else "torch"


BACKENDS = ("torch", "triton")
_TORCH = {"if": if_multistep_torch, "snm": snm_multistep_torch, "signed_memory": signed_memory_multistep_torch}
_fused_failed: list[str] = []  # the first error of the fused backend in this process: torch from then on
_FUSED_LOCK = threading.Lock()


def check_backend(name: str) -> str:
    """``name`` if it is a usable backend, else one clear ValueError (as SpikingJelly validates on set)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown neuron backend {name!r}: use 'torch' or 'triton'")
    if name == "triton" and importlib.util.find_spec("triton") is None:
        raise ValueError("neuron backend 'triton' needs the triton package (pip install triton; CUDA GPUs): "
                         "use 'torch'")
    return name


def _fused_or_torch(kind: str):
    """The Triton function of ``kind``; if it cannot compile or launch, one warning and the torch backend."""
    def run(x_seq, *args):
        if not _fused_failed:
            try:
                from spikeyolo.engine import triton_if

                if x_seq.stride(0) == 0:  # a constant input expanded over time: materialized, in its layout
                    x_seq = sequence_like(x_seq).copy_(x_seq)
                return getattr(triton_if, f"{kind}_multistep_triton")(x_seq, *args)
            except Exception as err:  # a compiler, driver or launch failure: never a crash, one warning
                with _FUSED_LOCK:  # threads (the live demo's) may fail at once: one record, one warning
                    first = not _fused_failed
                    if first:
                        _fused_failed.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
                if first:
                    warnings.warn(f"the Triton neuron backend failed ({_fused_failed[0][:200]}); running the torch "
                                  "backend instead (same results, slower)", RuntimeWarning, stacklevel=2)
        return _TORCH[kind](x_seq, *args)
    return run


_FUSED = {kind: _fused_or_torch(kind) for kind in _TORCH}  # built once, not once per layer call


def _backend(name: str, kind: str, max_spikes: int):
    """The ``kind`` ('if', 'snm' or 'signed_memory') multi-step function of backend ``name`` (validated when it was
    set, by ``check_backend``: here, on every layer call, only the name is checked; a missing or failing Triton
    falls back to torch with one warning)."""
    if max_spikes < 1:
        raise ValueError(f"max_spikes must be >= 1, got {max_spikes}")
    if name not in BACKENDS:
        raise ValueError(f"unknown neuron backend {name!r}: use 'torch' or 'triton'")
    return _TORCH[kind] if name == "torch" else _FUSED[kind]


def snm_multistep(x_seq: torch.Tensor, v: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
                  backend: str = "torch", max_spikes: int = 1):
    """Run the signed neuron with memory over time → (outputs, final v, final emitted)."""
    return _backend(backend, "snm", max_spikes)(x_seq, v, emitted, threshold, max_spikes)


def signed_memory_multistep(x_seq: torch.Tensor, s: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
                            negative_slope: float, offset: float, backend: str = "torch", max_spikes: int = 1):
    """Run the signed neuron with memory over time → (outputs, final s, final emitted)."""
    return _backend(backend, "signed_memory", max_spikes)(x_seq, s, emitted, threshold, negative_slope, offset,
                                                          max_spikes)


def if_multistep(x_seq: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor,
                 negative_threshold: torch.Tensor | None = None, backend: str = "torch", max_spikes: int = 1):
    """Run the IF neuron over time with the chosen backend ('torch' or 'triton')."""
    return _backend(backend, "if", max_spikes)(x_seq, v, threshold, negative_threshold, max_spikes)
