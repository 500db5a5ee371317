"""Data-based normalization: high percentiles of each layer's activation on calibration images."""
from __future__ import annotations

import torch
from torch import nn

from spikeyolo.ultra import conv_blocks

SAMPLES_PER_CHANNEL = 4096  # values kept per channel and batch; the percentile is taken over all kept


@torch.no_grad()
def activation_percentiles(model: nn.Module, batches, percentile: float = 99.9) -> dict[str, dict]:
    """Per Conv block: the per-channel and whole-layer ``percentile`` of its activation output."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    samples: dict[str, list[torch.Tensor]] = {}
    hooks = []
    generator = torch.Generator().manual_seed(0)

    def keep(name):
        def hook(_module, _inputs, output):
            per_channel = output.detach().transpose(0, 1).flatten(1).float().cpu()
            if per_channel.shape[1] > SAMPLES_PER_CHANNEL:
                idx = torch.randint(per_channel.shape[1], (SAMPLES_PER_CHANNEL,), generator=generator)
                per_channel = per_channel[:, idx]
            samples.setdefault(name, []).append(per_channel)
        return hook

    for name, block in conv_blocks(model):
        if not isinstance(block.act, nn.Identity):
            hooks.append(block.act.register_forward_hook(keep(name)))
    try:
        model.eval()
        for images in batches:
            model(images)
    finally:
        for h in hooks:
            h.remove()
    if not samples:
        raise ValueError("no calibration images reached the model: pass a non-empty --calib dataset")
    q = percentile / 100
    stats = {}
    for name, parts in samples.items():
        values = torch.cat(parts, 1)
        stats[name] = {"channel": torch.quantile(values, q, dim=1), "layer": torch.quantile(values.flatten()[
            torch.randperm(values.numel(), generator=generator)[:1_000_000]], q)}
    return stats
