"""Surrogate gradients for the spiking neurons: the same forward as the engine, a differentiable backward.

Every neuron kind emits a spike count that is a staircase of its scaled membrane u = v/θ: binary and burst IF
neurons clamp(floor(u), 0, D), the SNM clamp(floor(u), −min(m, D), D), the signed neuron with memory a staircase
of its running input. The count's forward is the engine's, exactly (the functions below run ``neuron.if_step`` / ``snm_step`` /
``signed_memory_step`` themselves, with a spike hook that attaches the gradient); its backward is the derivative of a
smooth staircase S(u) = lo + Σ_k σ(a·(u − k)) over the steps k ∈ (lo, hi] the count can take (σ the logistic
function, a the sharpness: SpikingJelly's ``surrogate.Sigmoid`` for one step). Gradients flow through the
membrane over time (BPTT), through the reset (v −= count·θ) and to θ itself (through u = v/θ, the output count·θ
and v0; ``spikeyolo tune --train-thresholds``); the memory of memory neurons is not trained.
Used by ``spikeyolo tune`` (hybrid fine-tuning of a converted network, Rathi et al. 2020).
"""
from __future__ import annotations

import torch

from spikeyolo.engine.neuron import if_step, signed_memory_step, snm_step

DEFAULT_SHARPNESS = 4.0  # a: SpikingJelly's Sigmoid surrogate default


def staircase_grad(u: torch.Tensor, low: torch.Tensor, high: torch.Tensor, sharpness: float, span: int) -> torch.Tensor:
    """dS/du of S(u) = low + Σ_{k = low+1}^{high} σ(a(u − k)), for integer bounds with −span ≤ low ≤ high ≤ span."""
    grad = torch.zeros_like(u)
    for k in range(-span + 1, span + 1):
        inside = (low < k) & (k <= high)
        sig = torch.sigmoid(sharpness * (u - k))
        grad = grad + torch.where(inside, sharpness * sig * (1 - sig), torch.zeros_like(u))
    return grad


class SpikeCount(torch.autograd.Function):
    """Forward: the exact ``count`` the engine computed; backward: ∂S/∂u of the smooth staircase."""

    @staticmethod
    def forward(ctx, u, count, low, high, sharpness, span):
        ctx.save_for_backward(u, low, high)
        ctx.sharpness, ctx.span = sharpness, span
        return count

    @staticmethod
    def backward(ctx, grad_out):
        u, low, high = ctx.saved_tensors
        return grad_out * staircase_grad(u, low, high, ctx.sharpness, ctx.span), None, None, None, None, None


def surrogate_spike(sharpness: float, span: int):
    """The step functions' spike hook for training: the exact count, the smooth staircase's gradient (``low`` and
    ``high`` numbers or tensors; the bounds carry no gradient)."""
    def spike(u: torch.Tensor, count: torch.Tensor, low, high) -> torch.Tensor:
        low, high = (torch.as_tensor(b, dtype=u.dtype, device=u.device).detach().expand_as(u) for b in (low, high))
        return SpikeCount.apply(u, count.detach(), low, high, sharpness, span)
    return spike


def if_multistep_surrogate(x_seq: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor, max_spikes: int = 1,
                           sharpness: float = DEFAULT_SHARPNESS) -> tuple[torch.Tensor, torch.Tensor]:
    """Unsigned IF (binary or burst), reset by subtraction, differentiable: ``neuron.if_step`` with the hook."""
    spike, outputs = surrogate_spike(sharpness, max_spikes), []
    for t in range(x_seq.shape[0]):
        out, v = if_step(x_seq[t], v, threshold, None, max_spikes, spike)
        outputs.append(out)
    return torch.stack(outputs), v


def snm_multistep_surrogate(x_seq: torch.Tensor, v: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
                            max_spikes: int = 1, sharpness: float = DEFAULT_SHARPNESS):
    """The signed neuron with memory, differentiable: ``neuron.snm_step`` with the hook (memory m not trained)."""
    spike, outputs = surrogate_spike(sharpness, max_spikes), []
    for t in range(x_seq.shape[0]):
        out, v, emitted = snm_step(x_seq[t], v, emitted, threshold, max_spikes, spike)
        emitted = emitted.detach()
        outputs.append(out)
    return torch.stack(outputs), v, emitted


def signed_memory_multistep_surrogate(x_seq: torch.Tensor, s: torch.Tensor, emitted: torch.Tensor,
                                      threshold: torch.Tensor, negative_slope: float, offset: float,
                                      max_spikes: int = 1, sharpness: float = DEFAULT_SHARPNESS):
    """The signed neuron with memory of leaky layers, differentiable: ``neuron.signed_memory_step`` with the hook."""
    spike, outputs = surrogate_spike(sharpness, max_spikes), []
    for t in range(x_seq.shape[0]):
        out, s, emitted = signed_memory_step(x_seq[t], s, emitted, threshold, negative_slope, offset, max_spikes,
                                             spike)
        emitted = emitted.detach()
        outputs.append(out)
    return torch.stack(outputs), s, emitted
