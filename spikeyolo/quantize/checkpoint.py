"""Detector checkpoints: the (QCFS or plain) ANN as safetensors with readable metadata (model yaml, class names,
quantization), written by the trainer and read by every command; the file format itself is spikeyolo.checkpoint."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from spikeyolo.checkpoint import FORMAT, CheckpointError, read_metadata, read_tensors, write_safetensors
from spikeyolo.quantize.swap import quantization_spec, quantize_model
from spikeyolo.ultra import build_detection_model


def save_detector(model: nn.Module, path: str | Path, **info) -> Path:
    """Write ``model`` (an ultralytics DetectionModel, QCFS or not) atomically to ``path``."""
    names = model.names if isinstance(model.names, list) else [model.names[i] for i in sorted(model.names)]
    meta = {"format": FORMAT, "model_yaml": model.yaml, "names": names,
            "quantization": quantization_spec(model), **info}
    state = {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    return write_safetensors(state, path, meta)


def load_detector(path: str | Path, device: str | torch.device = "cpu",
                  meta: dict | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the detector of a checkpoint (eval mode) and return it with its metadata (``meta``: already read)."""
    meta = meta or read_metadata(path)
    model = build_detection_model(meta["model_yaml"], nc=len(meta["names"]))
    spec = meta["quantization"]
    if spec.get("levels"):
        quantize_model(model, spec["levels"])
    state = read_tensors(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match its own model description: {str(err)[:200]}") from err
    bad = [name for name, m in model.named_modules()
           if isinstance(getattr(m, "threshold", None), torch.Tensor) and not bool((m.threshold != 0).all())]
    if bad:  # QCFS runs with |λ| (training may carry λ < 0); a zero λ would divide by zero once converted
        raise CheckpointError(f"{path}: QCFS threshold λ of {bad[0]} is 0: retrain or use other weights")
    model.names = dict(enumerate(meta["names"]))
    return model.to(device).eval(), meta
