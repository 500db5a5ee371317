"""Device names as the CLI takes them ('cpu', '0', 'cuda:1') → torch devices."""
from __future__ import annotations

import torch


def torch_device(device: str | int | torch.device) -> torch.device:
    """'cpu' → cpu; a bare index ('0', 0) → that CUDA device; anything else as torch reads it."""
    if isinstance(device, torch.device):
        return device
    name = str(device)
    return torch.device(f"cuda:{name}" if name.isdigit() else name)
