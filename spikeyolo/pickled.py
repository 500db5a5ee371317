"""Users' ``.pt`` checkpoints (pickles) read without running their code.

``torch.load(weights_only=True)`` rebuilds tensors and plain containers only. Every other class or function the
pickle names (``torch.serialization.get_unsafe_globals_in_checkpoint``: the checkpoint's module classes) becomes an
*inert stand-in* that only records the state handed to it: nothing the pickle names is imported, constructed or
called. A name outside the model-class namespaces (``os.system``, ``builtins.eval``, …) is refused in one line.
The state dict, the model yaml and the class names are then read off the stand-ins.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from spikeyolo.checkpoint import CheckpointError

# Namespaces of the classes a detection checkpoint holds (ultralytics, YOLOv5, torch modules) and of the plain data
# around them; a stand-in takes their place, so even these run nothing.
ALLOWED_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.", "ultralytics.utils.", "ultralytics.yolo.utils.",
                    "ultralytics.engine.", "models.common.", "models.yolo.", "models.experimental.", "utils.",
                    "numpy.", "numpy._core.", "pathlib.", "types.SimpleNamespace", "argparse.Namespace",
                    "spikeyolo.quantize.")
ALLOWED_NAMES = {"builtins.getattr", "builtins.set", "__builtin__.set", "collections.OrderedDict"}


class StandIn:
    """An inert record of a pickled object: its class name, constructor arguments and state."""
    qualified_name = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def get(self, key, default=None):
        state = getattr(self, "state", None)
        return state.get(key, default) if isinstance(state, dict) else default


def _inert_getattr(obj, name):
    return StandIn()


def _stand_ins(names: list[str], path: Path) -> list:
    refused = [n for n in names if n not in ALLOWED_NAMES and not n.startswith(ALLOWED_PREFIXES)]
    if refused:
        raise CheckpointError(f"{path} names {refused[0]}" + (f" and {len(refused) - 1} more" if len(refused) > 1
                              else "") + ", which a detection checkpoint does not hold: it was not loaded (it may "
                              "carry code); export the weights with the tool that made them")
    entries = []
    for name in names:
        if name == "builtins.getattr":
            entries.append((_inert_getattr, name))
        elif name in ("builtins.set", "__builtin__.set"):
            entries.append((set, name))
        else:
            stand_in = type(name.rpartition(".")[2], (StandIn,), {"qualified_name": name})
            entries.append((stand_in, name))
    return entries


@dataclass
class PickledCheckpoint:
    """What a ``.pt`` detection checkpoint holds: its model's class name, yaml, class names and tensors."""
    path: Path
    model_class: str
    yaml: dict | None
    names: list[str]
    state: dict[str, torch.Tensor]
    qcfs_levels: int | None = None  # a spikeyolo QCFS model's L


def read_pickled_checkpoint(path: str | Path) -> PickledCheckpoint:
    """The model inside an ultralytics or YOLOv5 ``.pt``, read without running anything it names."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: pass your .pt checkpoint")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        with torch.serialization.safe_globals(_stand_ins(names, path)):
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as err:  # torch reports damaged archives and refused opcodes in several ways
        raise CheckpointError(f"cannot read {path} as a torch checkpoint ({str(err).splitlines()[0][:160]})") from None
    model = checkpoint.get("ema") or checkpoint.get("model") if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(model, StandIn):
        raise CheckpointError(f"{path} holds no model (expected a checkpoint dict with 'model' or 'ema')")
    class_names = model.get("names")
    names = [class_names[k] for k in sorted(class_names)] if isinstance(class_names, dict) else class_names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: its model has no class names")
    yaml = model.get("yaml")
    levels = {m.get("levels") for m in _modules(model) if m.qualified_name.endswith("qcfs.QCFS")}
    if len(levels) > 1 or not all(isinstance(level, int) for level in levels):
        raise CheckpointError(f"{path}: its QCFS layers disagree on the number of levels ({sorted(map(str, levels))})")
    return PickledCheckpoint(path, model.qualified_name, yaml if isinstance(yaml, dict) else None, names,
                             _state_dict(model, path), levels.pop() if levels else None)


def _modules(module: StandIn) -> list[StandIn]:
    children = [c for c in (module.get("_modules") or OrderedDict()).values() if isinstance(c, StandIn)]
    return [module] + [m for child in children for m in _modules(child)]


def _state_dict(module: StandIn, path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a stand-in module tree, named as ``nn.Module.state_dict`` names them, as float32."""
    state = {}
    skip = module.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (module.get(group) or OrderedDict()).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{path}: {prefix}{name} is not a tensor")
            state[f"{prefix}{name}"] = tensor.detach().float() if tensor.is_floating_point() else tensor.detach()
    for name, child in (module.get("_modules") or OrderedDict()).items():
        if isinstance(child, StandIn):
            state.update(_state_dict(child, path, f"{prefix}{name}."))
    return state
