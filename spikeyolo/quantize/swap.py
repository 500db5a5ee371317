"""Swap each Conv block's activation for its own QCFS module."""
from __future__ import annotations

import torch
from torch import nn

from spikeyolo.quantize.qcfs import DEFAULT_THRESHOLD, QCFS
from spikeyolo.ultra import conv_blocks

# Activations QCFS may stand in for: ReLU-like ones become unsigned QCFS (a SiLU model from --from
# is fine-tuned into one), leaky-ReLU becomes the signed variant with its own slope.
RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.Mish)


def _replacement(act: nn.Module, levels: int, threshold: float) -> nn.Module | None:
    if isinstance(act, QCFS) or isinstance(act, nn.Identity):
        return None
    if isinstance(act, nn.LeakyReLU):
        return QCFS(levels, threshold, negative_slope=act.negative_slope)
    if isinstance(act, RELU_LIKE):
        return QCFS(levels, threshold)
    raise ValueError(f"cannot quantize activation {type(act).__name__}: use a ReLU-family activation in the model yaml")


def quantize_model(model: nn.Module, levels: int, threshold: float = DEFAULT_THRESHOLD) -> int:
    """Give every Conv block a fresh QCFS activation (in place); returns how many were swapped."""
    swapped = 0
    for _, block in conv_blocks(model):
        new = _replacement(block.act, levels, threshold)
        if new is not None:
            block.act = new.to(block.conv.weight.device)
            swapped += 1
    return swapped


def quantization_spec(model: nn.Module) -> dict:
    """What a checkpoint records of the quantization: levels, and λ and slope per layer."""
    layers = {name: {"threshold": round(float(block.act.threshold.detach().abs()), 6),
                     "negative_slope": block.act.negative_slope}
              for name, block in conv_blocks(model) if isinstance(block.act, QCFS)}
    levels = {block.act.levels for _, block in conv_blocks(model) if isinstance(block.act, QCFS)}
    if len(levels) > 1:
        raise ValueError(f"mixed QCFS levels in one model: {sorted(levels)}")
    return {"levels": levels.pop() if levels else None, "layers": layers}


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, images: torch.Tensor, percentile: float = 99.0) -> None:
    """Set each QCFS λ to a percentile of its input, layer by layer in one forward pass.

    Each layer is set before it runs, so later layers see already-quantized inputs. Useful to start
    QCFS fine-tuning of a pretrained model, or to give random test models a live spiking graph.
    """
    def set_lambda(module, inputs):
        z = inputs[0].detach().float()
        if module.signed:
            z = torch.where(z < 0, -z * module.negative_slope, z)
        flat = z.flatten()[:: max(1, z.numel() // 1_000_000)]
        module.threshold.data.fill_(max(float(torch.quantile(flat.clamp_min(0), percentile / 100)), 1e-3))

    hooks = [m.register_forward_pre_hook(set_lambda) for m in model.modules() if isinstance(m, QCFS)]
    try:
        model.eval()(images)
    finally:
        for h in hooks:
            h.remove()
