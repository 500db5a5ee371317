"""Device names as the CLI takes them ('auto', 'cpu', '0', 'cuda:1') → torch devices."""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch


def torch_device(device: str | int | torch.device = "auto") -> torch.device:
    """'auto' → the first GPU if there is one, else the CPU; a bare index ('0', 0) → that CUDA device;
    anything else as torch reads it."""
    if isinstance(device, torch.device):
        return device
    name = str(device)
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    return torch.device(f"cuda:{name}" if name.isdigit() else name)


def check_device(device: str | int | torch.device, many: bool = False) -> torch.device:
    """``torch_device(device)``, or one clear ValueError if it names a device this machine does not have. With
    ``many`` (training), a list of CUDA indices ('0,1') is accepted too: each is checked, the first returned."""
    if isinstance(device, str) and "," in device:
        indices = device.split(",")
        if not many:
            raise ValueError(f"device {device!r}: this command runs on one device; only train takes several "
                             "(ultralytics' multi-GPU training)")
        if not all(index.strip().isdigit() for index in indices) or len(set(indices)) != len(indices):
            raise ValueError(f"device {device!r}: several devices are distinct CUDA indices such as 0,1")
        return [check_device(index.strip()) for index in indices][0]
    try:
        resolved = torch_device(device)
    except RuntimeError as err:
        raise ValueError(f"device {device!r} is not a device name: use auto, cpu, or a CUDA index such as 0") from err
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: spikeyolo runs on cpu or cuda: use auto, cpu, or a CUDA index such as 0")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s): use --device cpu or auto")
    return resolved


def ultralytics_device(device: str | int | torch.device) -> str:
    """The device as ultralytics' trainer takes it: 'cpu', a CUDA index ('0') or several ('0,1': DDP)."""
    if isinstance(device, str) and "," in device:
        return ",".join(index.strip() for index in device.split(","))
    resolved = torch_device(device)
    return str(resolved.index or 0) if resolved.type == "cuda" else resolved.type


@contextmanager
def timed(seconds: dict, key: str, device: torch.device):
    """Add the wall time of the block to ``seconds[key]``, synchronized on CUDA (the block pays for its own
    device work, not for work queued before it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start
