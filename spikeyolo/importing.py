"""Users' ``.pt`` detectors as spikeyolo models, without unpickling their code (``spikeyolo.pickled``).

Ultralytics checkpoints (YOLOv8, YOLO11, …) are rebuilt from their own model yaml, checked like any weights
metadata (``spikeyolo.metadata``), and take every tensor. YOLOv5 v6.x checkpoints (``models.yolo.Model``, an
anchor-based head) map onto ultralytics' ``yolov5`` (v5u) architecture: layers 0–23 (backbone and neck) have the
same names and shapes and are carried over; the Detect head is either initialized anew (ultralytics' anchor-free
head, to train on labels) or, with ``anchor_head``, carried too as YOLOv5's own (``spikeyolo.anchor_head``: every
class and all the head knows).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from spikeyolo.checkpoint import CheckpointError
from spikeyolo.quantize.checkpoint import load_detector
from spikeyolo.limits import LimitError
from spikeyolo.metadata import check_anchors, check_model_yaml
from spikeyolo.pickled import PickledCheckpoint, read_pickled_checkpoint
from spikeyolo.quantize import quantize_model
from spikeyolo.resources import resource
from spikeyolo.ultra import build_detection_model, yaml_model

YOLOV5_SCALES = {(0.33, 0.25): "n", (0.33, 0.5): "s", (0.67, 0.75): "m", (1.0, 1.0): "l", (1.33, 1.25): "x"}


@dataclass
class ImportedModel:
    """A detector built from a user's checkpoint, and which of its tensors came from the file."""
    model: nn.Module
    names: list[str]
    carried: list[str]
    initialized: list[str]
    source: str  # the checkpoint's model class, e.g. models.yolo.Model
    qcfs_levels: int | None = None
    path: Path | None = None

    def carried_state(self) -> dict[str, torch.Tensor]:
        """The tensors that came from the file (not those initialized anew)."""
        carried = set(self.carried)
        return {k: v for k, v in self.model.state_dict().items() if k in carried}


def import_weights(path: str | Path) -> ImportedModel:
    """A .pt (``import_checkpoint``) or spikeyolo .safetensors (every tensor carried) as an ImportedModel."""
    if Path(path).suffix != ".safetensors":
        return import_checkpoint(path)
    net, meta = load_detector(path)
    return ImportedModel(net, meta["names"], list(net.state_dict()), [], "spikeyolo",
                         meta["quantization"].get("levels"), Path(path))


YOLOV5_STRIDES = (8.0, 16.0, 32.0)


def _yolov5_anchors(checkpoint: PickledCheckpoint) -> list[list[float]]:
    """The checkpoint's anchors in pixels (it keeps them in stride units), checked as a model yaml's would be."""
    anchors = checkpoint.state.get("model.24.anchors")
    if anchors is None or tuple(anchors.shape) != (3, 3, 2):
        raise CheckpointError(f"{checkpoint.path}: no YOLOv5 anchor head (model.24.anchors of shape 3×3×2) to carry")
    pixels = (anchors.float() * torch.tensor(YOLOV5_STRIDES).view(3, 1, 1)).flatten(1).tolist()
    try:
        return check_anchors([[round(v, 4) for v in level] for level in pixels], str(checkpoint.path))
    except ValueError as err:
        raise CheckpointError(str(err)) from None


def _yolov5_yaml(checkpoint: PickledCheckpoint, activation: str | None) -> dict:
    yaml = checkpoint.yaml or {}
    scale = YOLOV5_SCALES.get((round(float(yaml.get("depth_multiple", 0)), 2),
                               round(float(yaml.get("width_multiple", 0)), 2)))
    if scale is None:
        raise CheckpointError(f"{checkpoint.path}: a YOLOv5 model with depth/width multiples "
                              f"{yaml.get('depth_multiple')}/{yaml.get('width_multiple')} is none of n, s, m, l, x")
    config = yaml_model(resource("configs/models/yolov5n.yaml"))
    config["scales"] = {scale: [float(yaml["depth_multiple"]), float(yaml["width_multiple"]), 1024]}
    config["scale"] = scale
    if activation:
        config["activation"] = activation
    return config


def import_checkpoint(path: str | Path, activation: str | None = None, names: list[str] | None = None,
                      checkpoint: PickledCheckpoint | None = None, anchor_head: bool = False) -> ImportedModel:
    """The detector in ``path`` (a .pt), with ``activation`` (e.g. 'nn.ReLU()') in place of its own if given, and
    with ``names`` as its classes if given (to fine-tune on others: the class outputs are then initialized);
    ``checkpoint``: the file as already read (``read_pickled_checkpoint``); ``anchor_head``: a YOLOv5 checkpoint's
    head carried as it is (its own classes only)."""
    checkpoint = checkpoint or read_pickled_checkpoint(path)
    yolov5 = checkpoint.model_class == "models.yolo.Model"
    if anchor_head and (not yolov5 or (names and list(names) != list(checkpoint.names))):
        raise CheckpointError(f"{path}: only a YOLOv5 v6.x checkpoint's anchor head can be carried, with its own "
                              "classes")
    if yolov5:
        config = _yolov5_yaml(checkpoint, activation)
        if anchor_head:
            config["anchors"] = _yolov5_anchors(checkpoint)
    elif checkpoint.model_class.startswith(("ultralytics.", "spikeyolo.")) and checkpoint.yaml:
        config = {k: v for k, v in checkpoint.yaml.items() if k != "yaml_file"}
        if activation:
            config["activation"] = activation
    else:
        raise CheckpointError(f"{path} holds a {checkpoint.model_class}: spikeyolo imports ultralytics detectors "
                              "(YOLOv8, YOLO11, …) and YOLOv5 v6.x checkpoints")
    classes = list(names) if names else list(checkpoint.names)
    try:
        check_model_yaml(config, str(path), len(classes))
    except LimitError as err:
        raise CheckpointError(f"{err}: the checkpoint was not imported") from None
    model = build_detection_model(config, nc=len(classes))
    if checkpoint.qcfs_levels:  # a spikeyolo QCFS model: the same QCFS layers, so that λ is carried too
        quantize_model(model, checkpoint.qcfs_levels)
    target = model.state_dict()
    carried = [k for k, v in checkpoint.state.items() if k in target and target[k].shape == v.shape
               and (anchor_head or _carried_layer(k, checkpoint, len(model.model) - 1))]
    if not carried:
        raise CheckpointError(f"{path}: none of its tensors fits the rebuilt model: not a detector spikeyolo reads")
    model.load_state_dict({k: checkpoint.state[k] for k in carried}, strict=False)
    model.names = dict(enumerate(classes))
    initialized = [k for k in target if k not in set(carried)]
    return ImportedModel(model.eval(), classes, carried, initialized, checkpoint.model_class,
                         checkpoint.qcfs_levels, Path(path))


def _carried_layer(key: str, checkpoint: PickledCheckpoint, head: int) -> bool:
    """YOLOv5's anchor-based head does not carry over (same names, other meaning); everything else may."""
    return checkpoint.model_class != "models.yolo.Model" or not key.startswith(f"model.{head}.")

