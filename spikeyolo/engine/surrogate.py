"""Surrogate gradients for the spiking neurons: the same forward as the engine, a differentiable backward.

Every neuron kind emits a spike count that is a staircase of its scaled membrane u = v/θ: binary and burst IF
neurons clamp(floor(u), 0, D), the SNM clamp(floor(u), −min(m, D), D), the signed neuron with memory a staircase
of its running input. The count's forward is the engine's, exactly (the functions below repeat the float
operations of ``neuron.if_step`` / ``snm_step`` / ``signed_memory_step``); its backward is the derivative of a
smooth staircase S(u) = lo + Σ_k σ(a·(u − k)) over the steps k ∈ (lo, hi] the count can take (σ the logistic
function, a the sharpness: SpikingJelly's ``surrogate.Sigmoid`` for one step). Gradients flow through the
membrane over time (BPTT), through the reset (v −= count·θ) and to θ itself (through u = v/θ, the output count·θ
and v0; ``spikeyolo tune --train-thresholds``); the memory of memory neurons is not trained.
Used by ``spikeyolo tune`` (hybrid fine-tuning of a converted network, Rathi et al. 2020).
"""
from __future__ import annotations

import torch

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


def _theta(threshold: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return threshold if threshold.dim() == 0 else threshold.view(1, -1, *([1] * (like.dim() - 2)))


def _bound(value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.full_like(like, value)


def if_multistep_surrogate(x_seq: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor, max_spikes: int = 1,
                           sharpness: float = DEFAULT_SHARPNESS) -> tuple[torch.Tensor, torch.Tensor]:
    """Unsigned IF (binary or burst), reset by subtraction, differentiable: ``neuron.if_step``'s forward."""
    theta = _theta(threshold, x_seq[0])
    outputs = []
    for t in range(x_seq.shape[0]):
        v = v + x_seq[t]
        if max_spikes == 1:
            count = (v >= theta).to(x_seq.dtype)
        else:
            count = torch.clamp(torch.floor(v / theta), 0, max_spikes)
        u = v / theta
        count = SpikeCount.apply(u, count.detach(), _bound(0.0, u), _bound(max_spikes, u), sharpness, max_spikes)
        out = count * theta
        v = v - out
        outputs.append(out)
    return torch.stack(outputs), v


def snm_multistep_surrogate(x_seq: torch.Tensor, v: torch.Tensor, emitted: torch.Tensor, threshold: torch.Tensor,
                            max_spikes: int = 1, sharpness: float = DEFAULT_SHARPNESS):
    """The signed neuron with memory, differentiable: ``neuron.snm_step``'s forward (memory m not trained)."""
    theta = _theta(threshold, x_seq[0])
    outputs = []
    for t in range(x_seq.shape[0]):
        v = v + x_seq[t]
        u = v / theta
        low = -emitted.clamp(max=max_spikes)
        count = torch.maximum(torch.floor(u).clamp(max=max_spikes), low)
        count = SpikeCount.apply(u, count.detach(), low.detach(), _bound(max_spikes, u), sharpness, max_spikes)
        out = count * theta
        v, emitted = v - out, (emitted + count).detach()
        outputs.append(out)
    return torch.stack(outputs), v, emitted


def signed_memory_multistep_surrogate(x_seq: torch.Tensor, s: torch.Tensor, emitted: torch.Tensor,
                                      threshold: torch.Tensor, negative_slope: float, offset: float,
                                      max_spikes: int = 1, sharpness: float = DEFAULT_SHARPNESS):
    """The signed neuron with memory of leaky layers, differentiable: ``neuron.signed_memory_step``'s forward."""
    theta = _theta(threshold, x_seq[0])
    outputs = []
    for t in range(x_seq.shape[0]):
        s = s + x_seq[t]
        scaled = torch.where(s < 0, s * negative_slope, s)
        u = scaled / theta + offset - emitted
        count = torch.clamp(torch.floor(scaled / theta + offset) - emitted, -max_spikes, max_spikes)
        count = SpikeCount.apply(u, count.detach(), _bound(-max_spikes, u), _bound(max_spikes, u), sharpness,
                                 max_spikes)
        emitted = (emitted + count).detach()
        outputs.append(count * theta)
    return torch.stack(outputs), s, emitted
