"""YOLOv5's anchor-based Detect head, as a spikeyolo model's head (a model yaml with ``anchors``).

A YOLOv5 v6.x checkpoint's head is three 1×1 convolutions (strides 8, 16, 32) over the neck's outputs, each giving
three anchors per cell × (box, objectness, one score per class). Carried as it is, it keeps everything the
checkpoint learnt of its classes (COCO's 80): an anchor-free head taught from it on a few hundred photos keeps far
less (docs/results.md "Natural images: oi5"). Its tensors have YOLOv5's own names (``model.24.m.{i}``,
``model.24.anchors`` in stride units), so a checkpoint's head loads by name.

Decoding is YOLOv5's: xy = (2σ − ½ + cell)·stride, wh = (2σ)²·anchor, score = σ(objectness)·σ(class). In eval mode
the head returns ``(predictions [B, 4 + nc, A], raw)`` as ultralytics' Detect does (A = 3 anchors × cells, level by
level): the same predictions every command (NMS, val, detect) reads. ``raw`` is the three levels' outputs
[B, 3, H, W, 5 + nc] (logits); in training mode only ``raw`` is returned. Its last convolutions are linear: in the
spiking network they accumulate (their running mean is decoded at every step), as the anchor-free head's do.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ANCHORS_PER_CELL = 3
LEVEL_BALANCE = (4.0, 1.0, 0.4)  # objectness weight of strides 8, 16, 32 (YOLOv5's)
BOX_GAIN = 5.0  # the box term against the class term of ``head_loss``


class AnchorDetect(nn.Module):
    """YOLOv5's Detect: ``anchors`` in pixels per level ([[w, h, w, h, w, h], …]), ``channels`` the neck's widths."""

    def __init__(self, nc: int, anchors: list[list[float]], channels: list[int], strides: list[float]):
        super().__init__()
        self.nc = int(nc)
        self.no = self.nc + 5
        self.nl = len(anchors)
        pixels = torch.tensor(anchors, dtype=torch.float32).view(self.nl, ANCHORS_PER_CELL, 2)
        stride = torch.tensor(strides, dtype=torch.float32)
        self.register_buffer("stride", stride, persistent=False)
        self.register_buffer("anchors", pixels / stride.view(-1, 1, 1))  # YOLOv5 keeps them in stride units
        self.m = nn.ModuleList(nn.Conv2d(c, ANCHORS_PER_CELL * self.no, 1) for c in channels)

    def anchors_in_pixels(self) -> list[list[float]]:
        return (self.anchors * self.stride.view(-1, 1, 1)).flatten(1).tolist()

    def forward(self, x: list[torch.Tensor]):
        raw = []
        for level, conv in enumerate(self.m):
            y = conv(x[level])
            batch, _, height, width = y.shape
            raw.append(y.view(batch, ANCHORS_PER_CELL, self.no, height, width).permute(0, 1, 3, 4, 2))
        if self.training:
            return raw
        return torch.cat([self.decode_level(level, y) for level, y in enumerate(raw)], 2), raw

    def decode_level(self, level: int, raw: torch.Tensor) -> torch.Tensor:
        """One level's logits [B, 3, H, W, 5 + nc] → [B, 4 + nc, 3·H·W] (xywh pixels, σ(obj)·σ(class))."""
        y = raw.float().sigmoid()
        batch, _, height, width, _ = y.shape
        gy, gx = torch.meshgrid(torch.arange(height, device=y.device, dtype=y.dtype),
                                torch.arange(width, device=y.device, dtype=y.dtype), indexing="ij")
        cell = torch.stack((gx, gy), -1)  # [H, W, 2]
        stride = self.stride[level].to(y.dtype)
        xy = (y[..., :2] * 2 - 0.5 + cell) * stride
        wh = (y[..., 2:4] * 2) ** 2 * (self.anchors[level] * stride).view(1, ANCHORS_PER_CELL, 1, 1, 2).to(y.dtype)
        scores = y[..., 4:5] * y[..., 5:]
        return torch.cat((xy, wh, scores), -1).flatten(1, 3).transpose(1, 2)


def use_anchor_head(model: nn.Module, anchors: list[list[float]]) -> nn.Module:
    """Replace the built model's (anchor-free) Detect head by an AnchorDetect reading the same layers, in place; a
    ValueError unless the model ends in a Detect head over as many levels as ``anchors`` has."""
    old = model.model[-1]
    levels = len(getattr(old, "cv2", None) or [])
    if not hasattr(old, "reg_max") or levels != len(anchors):
        raise ValueError(f"model_yaml.anchors gives {len(anchors)} levels of anchors, but the model's last layer is "
                         f"{type(old).__name__} over {levels} levels: anchors need a Detect head over as many")
    channels = [branch[0].conv.in_channels for branch in old.cv2]
    head = AnchorDetect(old.nc, anchors, channels, [float(s) for s in old.stride])
    head.i, head.f, head.type = old.i, old.f, "spikeyolo.anchor_head.AnchorDetect"  # read by ultralytics' forward
    head.np = sum(p.numel() for p in head.parameters())
    model.model[-1] = head
    model.stride = head.stride.clone()
    return model


def head_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], balance=LEVEL_BALANCE,
              total: torch.Tensor | None = None, share: float = 1.0) -> dict[str, torch.Tensor]:
    """Objectness, class and box terms of the anchor head's logits (per level [B, 3, H, W, 5 + nc], or any
    [..., 5 + nc]); ``balance``: each level's objectness weight. Part of a batch split between processes: ``total``
    is the teacher's objectness summed over the whole batch, ``share`` this part's fraction of its images."""
    objectness, weighted_classes, weighted_boxes, weight = 0.0, 0.0, 0.0, 0.0
    for level, (s, t) in enumerate(zip(student, teacher)):
        p = t.float().sigmoid()
        s = s.float()
        objectness = objectness + balance[level] * share * F.binary_cross_entropy_with_logits(s[..., 4], p[..., 4])
        w = p[..., 4]
        classes = F.binary_cross_entropy_with_logits(s[..., 5:], p[..., 5:], reduction="none").mean(-1)
        boxes = ((s[..., :4].sigmoid() - p[..., :4]) ** 2).sum(-1)
        weighted_classes = weighted_classes + (w * classes).sum()
        weighted_boxes = weighted_boxes + (w * boxes).sum()
        weight = weight + w.sum()
    weight = weight.clamp_min(1.0) if total is None else total
    return {"objectness": objectness, "classes": weighted_classes / weight, "boxes": BOX_GAIN * weighted_boxes / weight}
