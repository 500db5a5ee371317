"""QCFS quantized clip-floor-shift activation (Bu et al., ICLR 2022).

    h(z) = λ · clip(floor(z·L/λ + φ) / L, 0, 1),   φ = 1/2

λ (``threshold``) is learnable per layer, ``levels`` is L.  Gradients follow the paper:
straight-through inside the clip range, and

    ∂h/∂λ = h/λ − z/λ   for 0 ≤ z ≤ λ,   1 for z > λ,   0 for z < 0.

The signed variant serves leaky-ReLU layers: the negative side is α·z quantized the same way
(clipped at −λ), which is what a signed IBT neuron with negative threshold θ/α produces.
The same module is the spiking neuron's ANN twin: the converter reads ``threshold`` and ``levels``.
"""
from __future__ import annotations

import torch
from torch import nn

SHIFT = 0.5  # φ: the half-step shift that makes the quantizer round to nearest


def qcfs(z: torch.Tensor, threshold: torch.Tensor, levels: int, negative_slope: float = 0.0) -> torch.Tensor:
    """Reference QCFS forward (no custom gradient); ``negative_slope`` > 0 gives the signed variant."""
    scaled = z if negative_slope == 0.0 else torch.where(z < 0, z * negative_slope, z)
    low = -1.0 if negative_slope > 0.0 else 0.0
    steps = torch.floor(scaled * levels / threshold + SHIFT)
    return threshold * torch.clamp(steps / levels, low, 1.0)


class _QCFSFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, threshold, levels, negative_slope):
        out = qcfs(z, threshold, levels, negative_slope)
        ctx.save_for_backward(z, threshold, out)
        ctx.negative_slope = negative_slope
        return out

    @staticmethod
    def backward(ctx, grad_out):
        z, threshold, out = ctx.saved_tensors
        alpha = ctx.negative_slope
        above = z > threshold
        positive_in = (z >= 0) & ~above
        slope = positive_in.to(z.dtype)
        # ∂h/∂λ = h/λ − s/λ inside the range (s the slope-scaled input), ±1 beyond it, 0 where clipped at 0
        d_threshold = torch.where(positive_in, (out - z) / threshold, above.to(z.dtype))
        if alpha > 0.0:
            below = z * alpha < -threshold
            negative_in = (z < 0) & ~below
            slope = slope + negative_in.to(z.dtype) * alpha
            d_threshold = torch.where(negative_in, (out - alpha * z) / threshold, d_threshold)
            d_threshold = torch.where(below, -torch.ones_like(z), d_threshold)
        grad_z = grad_out * slope
        grad_threshold = (grad_out * d_threshold).sum().reshape(threshold.shape)
        return grad_z, grad_threshold, None, None


class QCFS(nn.Module):
    """QCFS activation with a learnable threshold λ; one instance per layer (it holds state)."""

    def __init__(self, levels: int = 4, threshold: float = 4.0, negative_slope: float = 0.0):
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
        threshold = self.threshold.abs().clamp_min(1e-4).to(z.dtype)
        return _QCFSFunction.apply(z, threshold, self.levels, self.negative_slope)

    def extra_repr(self) -> str:
        signed = f", negative_slope={self.negative_slope}" if self.signed else ""
        return f"levels={self.levels}, threshold={self.threshold.item():.4g}{signed}"
