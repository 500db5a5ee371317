"""Adam's state as named tensors for resume files (``adam.<index>.<name>``), and back, every entry checked against
the run's parameters before the optimizer sees it (a damaged or foreign file is one ValueError, not a failure
mid-epoch or a run on garbage). Used by `tune` and `distill`."""
from __future__ import annotations

import torch

ADAM_ENTRIES = ("step", "exp_avg", "exp_avg_sq")


def adam_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return {f"adam.{index}.{key}": torch.as_tensor(value)
            for index, state in optimizer.state_dict()["state"].items() for key, value in state.items()}


def restore_adam(optimizer: torch.optim.Optimizer, saved: dict[str, torch.Tensor]) -> None:
    """Load ``adam_tensors``' entries of ``saved`` (other keys are ignored); a ValueError naming the first entry
    whose index, name, shape or values do not fit the optimizer's parameters."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    for key, value in saved.items():
        if not key.startswith("adam."):
            continue
        _, index, name = key.split(".", 2)
        if not index.isdigit() or int(index) >= len(params) or name not in ADAM_ENTRIES:
            raise ValueError(f"unknown optimizer entry {key}")
        shape = () if name == "step" else params[int(index)].shape
        if value.shape != shape or not torch.isfinite(value).all():
            raise ValueError(f"{key} has shape {tuple(value.shape)}, not {tuple(shape)}, or non-finite values")
        state.setdefault(int(index), {})[name] = value
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)


def checked_steps(saved: dict[str, torch.Tensor], total: int) -> int:
    """The resume file's ``steps_done``: one count in [0, total], else a ValueError."""
    steps = saved.get("steps_done")
    if steps is None or steps.numel() != 1 or not 0 <= int(steps) <= total:
        raise ValueError(f"steps_done must be one count in [0, {total}]")
    return int(steps)
