"""A YOLOv5 v6.x checkpoint's own anchor-based head as a teacher for an anchor-free student (``train --teacher
yolov5n.pt``).

Importing a YOLOv5 checkpoint carries its backbone and neck; its Detect head (three 1×1 convolutions over three
anchors per cell) has no counterpart in ultralytics' anchor-free head, which starts from scratch, and 600 photos do
not teach a new head what COCO taught the old one (oi5: the COCO YOLOv5n zero-shot reaches 0.44 mAP50 on its val
images with its own head; fine-tuned with a fresh head, 0.17 after 30 epochs; docs/results.md "Natural images: oi5"). The old
head can still teach: at every cell of every level (both heads use strides 8, 16, 32 and the same grid) it says
how likely each class is (objectness × class probability, the best of the cell's three anchors) and where the box
of its most confident anchor lies. In the student's terms: class logits, and each box side's distance from the
cell's centre in stride units as a two-bin distribution over the student's ``reg_max`` bins (as DFL targets it).
``DistilledLoss`` then pulls the student's raw outputs towards these, exactly as it does for an anchor-free teacher;
only the data's classes are kept (found by name among the checkpoint's, case-insensitive).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from spikeyolo.checkpoint import CheckpointError
from spikeyolo.importing import import_checkpoint
from spikeyolo.pickled import read_pickled_checkpoint
from spikeyolo.ultra import decode_head_outputs


class _Stop(Exception):
    """Raised once the Detect head's inputs are known: the imported (fresh) head need not run."""


def class_columns(checkpoint_names: list[str], wanted: list[str], path: str | Path) -> list[int]:
    lower = [name.lower() for name in checkpoint_names]
    missing = [name for name in wanted if name.lower() not in lower]
    if missing:
        raise CheckpointError(f"--teacher {path} does not detect {missing} (it knows {len(lower)} classes, e.g. "
                              f"{checkpoint_names[:3]}): use a teacher trained on the data's classes")
    return [lower.index(name.lower()) for name in wanted]


def box_side_logits(distances: torch.Tensor, bins: int) -> torch.Tensor:
    """Distances [..., 4] in stride units → [..., 4, bins] logits of the two-bin distribution DFL targets (the
    mass split between the bins either side of the distance, so that its mean is the distance)."""
    d = distances.clamp(0, bins - 1 - 1e-3)
    left = d.floor().long()
    upper = d - left
    mass = torch.zeros(*d.shape, bins, dtype=d.dtype, device=d.device)
    mass.scatter_(-1, left.unsqueeze(-1), (1 - upper).unsqueeze(-1))
    mass.scatter_add_(-1, (left + 1).clamp(max=bins - 1).unsqueeze(-1), upper.unsqueeze(-1))
    return mass.clamp_min(1e-6).log()


def read_yolov5(path: str | Path):
    """The checkpoint (read without unpickling), refused in one line unless it is a YOLOv5 v6.x one."""
    checkpoint = read_pickled_checkpoint(path)
    state = checkpoint.state
    if checkpoint.model_class != "models.yolo.Model" or "model.24.anchors" not in state:
        raise CheckpointError(f"--teacher {path}: a .pt teacher must be a YOLOv5 v6.x checkpoint (anchor head "
                              "model.24); import other checkpoints and train them first")
    outputs = 3 * (5 + len(checkpoint.names))  # three anchors, each box, objectness and a score per class
    shapes = {key: tuple(state[key].shape) if key in state else None
              for key in ["model.24.anchors"] + [f"model.24.m.{i}.{t}" for i in range(3) for t in ("weight", "bias")]}
    good = shapes["model.24.anchors"] == (3, 3, 2) and all(
        shapes[f"model.24.m.{i}.bias"] == (outputs,) and shapes[f"model.24.m.{i}.weight"] is not None
        and len(shapes[f"model.24.m.{i}.weight"]) == 4 and shapes[f"model.24.m.{i}.weight"][0] == outputs
        and shapes[f"model.24.m.{i}.weight"][2:] == (1, 1) for i in range(3))
    if not good:
        raise CheckpointError(f"--teacher {path}: its anchor head is not YOLOv5's (3 levels × 3 anchors, "
                              f"{outputs} outputs per level for {len(checkpoint.names)} classes): {shapes}")
    return checkpoint


class AnchorHeadTeacher(nn.Module):
    """``teacher(images)`` → {"scores": [B, nc, A] logits, "boxes": [B, 4·bins, A] logits, "feats": the neck's
    outputs}, anchors ordered as ultralytics' anchor-free head orders them (level by level, row-major): what the
    student is taught, in its own terms; ``decode`` turns it into boxes as the student decodes its own."""

    def __init__(self, path: str | Path, names: list[str], bins: int = 16, checkpoint=None):
        """``checkpoint``: the file as ``read_yolov5`` already read (and checked) it."""
        super().__init__()
        checkpoint = checkpoint or read_yolov5(path)
        self.body = import_checkpoint(path, checkpoint=checkpoint).model.eval()
        self.names = dict(enumerate(names))
        self.bins = bins
        self.register_buffer("columns", torch.tensor(class_columns(checkpoint.names, names, path)) + 5)
        self.register_buffer("anchors", checkpoint.state["model.24.anchors"].clone())  # [levels, 3, 2], strides
        self.convs = nn.ModuleList()
        for level in range(self.anchors.shape[0]):
            weight = checkpoint.state[f"model.24.m.{level}.weight"]
            width = self.body.model[-1].cv2[level][0].conv.in_channels  # the imported neck's output at this level
            if weight.shape[1] != width:
                raise CheckpointError(f"--teacher {path}: its anchor head reads {weight.shape[1]} channels at level "
                                      f"{level}, its own neck gives {width}: a damaged checkpoint")
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
            conv.weight.data.copy_(weight)
            conv.bias.data.copy_(checkpoint.state[f"model.24.m.{level}.bias"])
            self.convs.append(conv)
        self.stride = self.body.model[-1].stride

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        found = []

        def stop(_module, inputs):
            found.extend(inputs[0])
            raise _Stop

        hook = self.body.model[-1].register_forward_pre_hook(stop)
        try:
            self.body(images)
        except _Stop:
            pass
        finally:
            hook.remove()
        return found

    def forward(self, images: torch.Tensor):
        feats = self.features(images)
        scores, boxes = [], []
        for level, (x, conv) in enumerate(zip(feats, self.convs)):
            y = conv(x).sigmoid()
            batch, _, height, width = y.shape
            y = y.view(batch, 3, -1, height, width).permute(0, 1, 3, 4, 2)  # [B, 3, H, W, 5 + classes]
            probability = y[..., 4:5] * y[..., self.columns]  # [B, 3, H, W, nc]
            best = probability.amax(-1).argmax(1, keepdim=True)  # the cell's most confident anchor
            pick = best.unsqueeze(-1).expand(-1, -1, -1, -1, 4)
            box = y[..., :4].gather(1, pick).squeeze(1)  # [B, H, W, 4] of that anchor
            anchor = self.anchors[level].view(1, 3, 1, 1, 2).expand(batch, -1, height, width, -1)
            size = anchor.gather(1, best.unsqueeze(-1).expand(-1, -1, -1, -1, 2)).squeeze(1)
            gy, gx = torch.meshgrid(torch.arange(height, device=y.device), torch.arange(width, device=y.device),
                                    indexing="ij")
            corner = torch.stack((gx, gy), -1).to(y.dtype)  # in stride units: the cell's centre is corner + 0.5
            centre = box[..., :2] * 2 - 0.5 + corner
            half = (box[..., 2:] * 2) ** 2 * size / 2
            point = corner + 0.5
            distances = torch.cat((point - (centre - half), (centre + half) - point), -1)  # l, t, r, b
            scores.append(torch.logit(probability.amax(1).clamp(1e-6, 1 - 1e-6)).flatten(1, 2).transpose(1, 2))
            sides = box_side_logits(distances, self.bins)  # [B, H, W, 4, bins]
            boxes.append(sides.flatten(3).flatten(1, 2).transpose(1, 2))
        return {"scores": torch.cat(scores, 2), "boxes": torch.cat(boxes, 2), "feats": feats}

    def decode(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, 4 + nc, A] (xywh pixels, probabilities): the targets read as a detector's output (not needed to teach:
        training uses the raw targets; the zero-shot benchmark and the tests use this)."""
        return decode_head_outputs(self.body.model[-1], raw)
