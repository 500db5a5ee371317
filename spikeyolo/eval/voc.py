"""PASCAL VOC average precision, as the devkit computes it (VOC2007 11-point and VOC2010+ area).

Difficult objects count neither as misses nor, when detected, as false positives; a second detection
of an already matched object is a false positive. A class with no (non-difficult) ground truth has
no AP (None) and is left out of the mean.
"""
from __future__ import annotations

import numpy as np

from spikeyolo.data.records import ImageRecord
from spikeyolo.detections import Detections


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP from a precision/recall curve: 11-point interpolation (2007) or the area under it (2010+)."""
    if use_07_metric:
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU with the devkit's +1 pixel convention."""
    ix1, iy1 = np.maximum(boxes[:, 0], box[0]), np.maximum(boxes[:, 1], box[1])
    ix2, iy2 = np.minimum(boxes[:, 2], box[2]), np.minimum(boxes[:, 3], box[3])
    inter = np.maximum(ix2 - ix1 + 1, 0) * np.maximum(iy2 - iy1 + 1, 0)
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    return inter / (area + areas - inter)


def _class_tp_fp(cls: int, detections: dict, truth: dict, iou_threshold: float):
    gts = {key: (np.array([b[1:] for b in r.boxes if b[0] == cls]).reshape(-1, 4),
                 np.array([d for b, d in zip(r.boxes, r.difficult) if b[0] == cls], dtype=bool))
           for key, r in truth.items()}
    positives = sum(int((~hard).sum()) for _, hard in gts.values())
    found = [(score, key, box) for key, det in detections.items() if key in gts
             for box, score, c in zip(det.boxes, det.scores, det.classes) if c == cls]
    found.sort(key=lambda item: -item[0])
    matched = {key: np.zeros(len(hard), dtype=bool) for key, (_, hard) in gts.items()}
    tp, fp = np.zeros(len(found)), np.zeros(len(found))
    for i, (_, key, box) in enumerate(found):
        boxes, hard = gts[key]
        overlaps = _iou(box, boxes) if len(boxes) else np.zeros(0)
        best = int(overlaps.argmax()) if len(overlaps) else -1
        if best >= 0 and overlaps[best] > iou_threshold:
            if hard[best]:
                continue
            if not matched[key][best]:
                tp[i], matched[key][best] = 1, True
            else:
                fp[i] = 1
        else:
            fp[i] = 1
    return tp, fp, positives


def voc_evaluate(detections: dict[str, Detections], truth: dict[str, ImageRecord], names: list[str],
                 iou_threshold: float = 0.5) -> dict:
    """AP per class (2007 11-point and area) and their means over classes with ground truth."""
    result = {"ap07": {}, "ap": {}}
    for cls, name in enumerate(names):
        tp, fp, positives = _class_tp_fp(cls, detections, truth, iou_threshold)
        if positives == 0:
            result["ap07"][name] = result["ap"][name] = None
            continue
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        result["ap07"][name] = voc_ap(recall, precision, True)
        result["ap"][name] = voc_ap(recall, precision, False)
    for key, mean in (("ap07", "map07"), ("ap", "map")):
        values = [v for v in result[key].values() if v is not None]
        result[mean] = float(np.mean(values)) if values else 0.0
    return result
