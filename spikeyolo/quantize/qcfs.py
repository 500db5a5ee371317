"""QCFS quantized clip-floor-shift activation (Bu et al., ICLR 2022).

    h(z) = λ · clip(floor(z·L/λ + φ) / L, 0, 1),   φ = 1/2

λ (``threshold``) is learnable per layer, ``levels`` is L.  Gradients are those of the paper's
code (z/λ clamped to [0, 1], a straight-through floor, times λ; autograd of that composition is the
test's reference): ∂h/∂z = 1 and ∂h/∂λ = h/λ − z/λ for 0 < z < λ;  ∂h/∂λ = 1 for z ≥ λ;
0 for z ≤ 0.

The signed variant serves leaky-ReLU layers: the negative side is α·z quantized the same way
(clipped at −λ), which is what a signed IBT neuron with negative threshold θ/α produces.
The same module is the spiking neuron's ANN twin: the converter reads ``threshold`` and ``levels``.
"""
from __future__ import annotations

import torch
from torch import nn

SHIFT = 0.5  # φ: the half-step shift that makes the quantizer round to nearest
from spikeyolo.defaults import QCFS_THRESHOLD as DEFAULT_THRESHOLD  # initial λ of every layer


def qcfs(z: torch.Tensor, threshold: torch.Tensor, levels: int, negative_slope: float = 0.0) -> torch.Tensor:
    """Reference QCFS forward (no custom gradient); ``negative_slope`` > 0 gives the signed variant."""
    scaled = z if negative_slope == 0.0 else torch.where(z < 0, z * negative_slope, z)
    low = -1.0 if negative_slope > 0.0 else 0.0
    steps = torch.floor(scaled * levels / threshold + SHIFT)
    return threshold * torch.clamp(steps / levels, low, 1.0)


class _QCFSFunction(torch.autograd.Function):
    """QCFS with the paper's gradients. λ stays float32 and its gradient is summed in float32 whatever z's
    dtype (under AMP z is fp16: an fp16 sum over N·C·H·W overflows to inf once GradScaler scales the loss)."""

    @staticmethod
    def forward(ctx, z, threshold, levels, negative_slope):
        out = qcfs(z.to(threshold.dtype), threshold, levels, negative_slope)
        ctx.save_for_backward(z, threshold, out)
        ctx.negative_slope = negative_slope
        return out.to(z.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        z, threshold, out = ctx.saved_tensors
        z, grad_out, input_dtype = z.to(threshold.dtype), grad_out.to(threshold.dtype), z.dtype
        alpha = ctx.negative_slope
        scaled = torch.where(z < 0, alpha * z, z) if alpha > 0.0 else z  # s: the slope-scaled input
        x = scaled / threshold  # the paper clamps s/λ to [0, 1] ([−1, 1] signed): gradients pass strictly inside
        inside = (x > (-1.0 if alpha > 0.0 else 0.0)) & (x < 1.0)
        slope = torch.where(z < 0, torch.full_like(z, alpha), torch.ones_like(z))
        # ∂h/∂λ = (h − s)/λ inside, +1 at or above the top (h = λ), −1 at or below −λ (signed), else 0
        beyond = (x >= 1.0).to(z.dtype) - ((x <= -1.0) & (z < 0)).to(z.dtype) * (alpha > 0.0)
        d_threshold = torch.where(inside, (out - scaled) / threshold, beyond)
        grad_z = (grad_out * slope * inside).to(input_dtype)
        grad_threshold = (grad_out * d_threshold).sum().reshape(threshold.shape)
        return grad_z, grad_threshold, None, None


class QCFS(nn.Module):
    """QCFS activation with a learnable threshold λ; one instance per layer (it holds state)."""

    def __init__(self, levels: int = 4, threshold: float = DEFAULT_THRESHOLD, negative_slope: float = 0.0):
        super().__init__()
        if levels < 1:
            raise ValueError(f"QCFS levels must be >= 1, got {levels}")
        if not 0.0 <= negative_slope < 1.0:
            raise ValueError(f"QCFS negative_slope must be in [0, 1), got {negative_slope}")
        self.levels = int(levels)
        self.negative_slope = float(negative_slope)
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    @property
    def signed(self) -> bool:
        return self.negative_slope > 0.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        threshold = self.threshold.abs().clamp_min(1e-4)
        threshold = threshold.to(torch.promote_types(threshold.dtype, torch.float32))  # never fp16 (AMP)
        return _QCFSFunction.apply(z, threshold, self.levels, self.negative_slope)

    def extra_repr(self) -> str:
        signed = f", negative_slope={self.negative_slope}" if self.signed else ""
        return f"levels={self.levels}, threshold={self.threshold.item():.4g}{signed}"
