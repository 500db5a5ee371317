"""Users' ``.pt`` checkpoints (pickles) read without running their code.

``torch.load(weights_only=True)`` rebuilds tensors and plain containers only. Every other class or function the
pickle names (``torch.serialization.get_unsafe_globals_in_checkpoint``: the checkpoint's module classes) becomes an
*inert stand-in* that only records the state handed to it: nothing the pickle names is imported, constructed or
called. A name outside the model-class namespaces (``os.system``, ``builtins.eval``, …) is refused in one line.
The state dict, the model yaml and the class names are then read off the stand-ins.
"""
from __future__ import annotations

from collections import OrderedDict
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from spikeyolo.checkpoint import CheckpointError
from spikeyolo.limits import MAX_MODULE_DEPTH, MAX_MODULES, MAX_PT_BYTES

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
        _check_archive(path)
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
    levels = {m.get("levels") for _, m in _modules(model, path) if m.qualified_name.endswith("qcfs.QCFS")}
    if len(levels) > 1 or not all(isinstance(level, int) for level in levels):
        raise CheckpointError(f"{path}: its QCFS layers disagree on the number of levels ({sorted(map(str, levels))})")
    return PickledCheckpoint(path, model.qualified_name, yaml if isinstance(yaml, dict) else None, names,
                             _state_dict(model, path), levels.pop() if levels else None)


def _check_archive(path: Path) -> None:
    """Before anything is unpacked: a zip archive (the legacy format is refused), whose records torch.save writes
    uncompressed, so a compressed one (which may inflate a few megabytes into gigabytes) is refused, and so are
    records that add up to more than MAX_PT_BYTES."""
    if not zipfile.is_zipfile(path):  # torch < 1.6's format: its storages' sizes are read from the pickle itself
        raise CheckpointError(f"{path} is not a zip archive, the format torch.save has written since torch 1.6 (2020): "
                              "it was not loaded; load it with the torch that made it and torch.save it again")
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise CheckpointError(f"{path}: record {packed[0]} is compressed, which torch.save never writes (it may unpack "
                              "to gigabytes): it was not loaded; save the checkpoint again with torch.save")
    total = sum(e.file_size for e in entries)
    if total > MAX_PT_BYTES:
        raise CheckpointError(f"{path} unpacks to {total / 2**30:.1f} GB, more than the {MAX_PT_BYTES / 2**30:.0f} GB "
                              "a detection checkpoint holds: it was not loaded")


def _modules(root: StandIn, path: Path) -> list[tuple[str, StandIn]]:
    """(prefix, module) of a stand-in module tree, parents first, as ``nn.Module.state_dict`` visits it (a module
    shared by two parents under both names), walked without recursion. A module inside itself, a tree deeper than
    MAX_MODULE_DEPTH or one of more than MAX_MODULES visits is one CheckpointError."""
    found, pending = [], [("", root, ())]
    while pending:
        prefix, module, ancestors = pending.pop()
        where = prefix.rstrip(".") or "the root"
        if id(module) in ancestors or len(ancestors) > MAX_MODULE_DEPTH or len(found) >= MAX_MODULES:
            what = ("holds a module inside itself" if id(module) in ancestors else
                    f"nests modules deeper than {MAX_MODULE_DEPTH}" if len(ancestors) > MAX_MODULE_DEPTH else
                    f"has more than {MAX_MODULES} modules")
            raise CheckpointError(f"{path}: its model {what} (at {where}), which no detector does: it was not loaded")
        found.append((prefix, module))
        children = module.get("_modules") or OrderedDict()
        if not isinstance(children, dict):
            raise CheckpointError(f"{path}: the submodules of {where} are not a mapping: it was not loaded")
        pending += [(f"{prefix}{name}.", child, (*ancestors, id(module))) for name, child in reversed(children.items())
                    if isinstance(child, StandIn)]
    return found


def _state_dict(root: StandIn, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a stand-in module tree, named as ``nn.Module.state_dict`` names them, as float32; a tensor
    that claims more elements than its storage holds (an expanded view) is refused before anything is copied."""
    state, total = {}, 0
    for prefix, module in _modules(root, path):
        skip = module.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            for name, tensor in (module.get(group) or OrderedDict()).items():
                if tensor is None or (group == "_buffers" and name in skip):
                    continue
                if not isinstance(tensor, torch.Tensor):
                    raise CheckpointError(f"{path}: {prefix}{name} is not a tensor")
                needed = tensor.numel() * tensor.element_size()
                if needed > tensor.untyped_storage().nbytes():
                    raise CheckpointError(f"{path}: {prefix}{name} claims shape {tuple(tensor.shape)} on "
                                          f"{tensor.untyped_storage().nbytes()} bytes of storage (an expanded view, "
                                          "which a saved model does not hold): it was not loaded")
                total += tensor.numel() * 4
                if total > MAX_PT_BYTES:
                    raise CheckpointError(f"{path}: its tensors add up to more than {MAX_PT_BYTES / 2**30:.0f} GB as "
                                          "float32: it was not loaded")
                state[f"{prefix}{name}"] = tensor.detach().float() if tensor.is_floating_point() else tensor.detach()
    return state
