"""The file format of every spikeyolo weights file: safetensors with readable JSON metadata (never pickled).

The header of the .safetensors file carries, under the key ``spikeyolo``, its format and version, the model
yaml, class names, QCFS levels and λ per layer, image size, training data and measured metrics. Detector
checkpoints are written and rebuilt by ``spikeyolo.quantize.checkpoint``, SNN artifacts by
``spikeyolo.convert.artifact``; this module only reads, checks and writes files (it imports neither).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from spikeyolo.atomic import atomic_path
from spikeyolo.limits import LimitError
from spikeyolo.metadata import check_detector_metadata, check_snn_metadata

FORMAT = "spikeyolo-detector/1"
SNN_FORMAT = "spikeyolo-snn/3"  # spikeyolo.convert.artifact writes it; /3: the spiking graph described in full
SNN_FORMATS = ("spikeyolo-snn/1", "spikeyolo-snn/2", SNN_FORMAT)  # read (/2: leaky layers with v0 > 0 have memory)


class CheckpointError(ValueError):
    """A weights file spikeyolo cannot use; the message names the file and what to do."""


def read_metadata(path: str | Path, expected: str | tuple[str, ...] = FORMAT) -> dict:
    """The JSON metadata of a spikeyolo file (detector or SNN; ``expected``: its format, or formats), without
    loading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} not found: pass a .safetensors file written by spikeyolo")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("spikeyolo")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}): pass spikeyolo weights, "
                              f"or convert an ultralytics .pt with 'spikeyolo train --from'") from err
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError as err:
        raise CheckpointError(f"{path}: its spikeyolo metadata is not valid JSON ({err}): pass weights written by "
                              "spikeyolo") from None
    expected = (expected,) if isinstance(expected, str) else expected
    found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
    newer = isinstance(found, str) and found not in expected and any(_newer(found, known) for known in expected)
    if newer:
        raise CheckpointError(f"{path} is a {found} file, newer than this spikeyolo reads ({', '.join(expected)}): "
                              "upgrade spikeyolo")
    if not isinstance(meta, dict) or meta.get("format") not in expected:
        raise CheckpointError(f"{path} is not a {' or '.join(expected)} file (format {found!r}): "
                              f"pass weights written by spikeyolo")
    check = check_snn_metadata if meta["format"] in SNN_FORMATS else \
        check_detector_metadata if meta["format"] == FORMAT else None  # other formats: spikeyolo's own work files
    try:
        if check:
            check(meta, str(path))
    except LimitError as err:
        raise CheckpointError(f"{err}: the file was not loaded (nothing in its metadata is run or opened); "
                              "pass weights written by spikeyolo") from None
    return meta


def _newer(found: str, known: str) -> bool:
    """'spikeyolo-snn/4' is newer than 'spikeyolo-snn/3' (same kind, larger version)."""
    kind, _, version = found.rpartition("/")
    known_kind, _, known_version = known.rpartition("/")
    return kind == known_kind and version.isdigit() and known_version.isdigit() and int(version) > int(known_version)


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; refuses NaN or inf."""
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path} holds non-finite values (NaN/inf) in {bad[0]}: retrain or use other weights")
    return state


def write_safetensors(state: dict[str, torch.Tensor], path: str | Path, meta: dict) -> Path:
    """Write tensors and JSON metadata atomically (temporary name, then rename)."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={"spikeyolo": json.dumps(meta)})
        except SafetensorError as err:  # its I/O errors arrive as text: the OS error they carry, for one line
            found = re.search(r"os error (\d+)|code: (\d+)", str(err))
            if not found:
                raise
            code = int(found.group(1) or found.group(2))
            raise OSError(code, os.strerror(code), str(path)) from None
    return path
