"""COCO evaluation with pycocotools on the dataset's own annotation file and category ids."""
from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from spikeyolo.data.coco import box_corners, load_coco_json


STAT_NAMES = ("map50_95", "map50", "map75", "map_small", "map_medium", "map_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def coco_results(detections: dict, category_ids: list[int]) -> list[dict]:
    """COCO results JSON entries: {image_id, category_id (original), bbox [x, y, w, h], score}."""
    out = []
    for image_id, det in detections.items():
        for (x1, y1, x2, y2), score, cls in zip(det.boxes, det.scores, det.classes):
            out.append({"image_id": image_id, "category_id": int(category_ids[cls]),
                        "bbox": [round(float(x1), 3), round(float(y1), 3), round(float(x2 - x1), 3),
                                 round(float(y2 - y1), 3)], "score": round(float(score), 5)})
    return out


def load_ground_truth(annotation_file: str | Path) -> COCO:
    """The annotation file as pycocotools' ground truth, read with the same checks as training: boxes that are not
    four finite numbers (skipped in training too) are left out, ``iscrowd`` and ``area`` filled where missing and the
    annotation ids numbered anew (a stranger's file would otherwise reach pycocotools' own tracebacks)."""
    data = load_coco_json(Path(annotation_file))
    annotations = []
    for ann in data["annotations"]:
        corners = box_corners(ann.get("bbox"))
        if corners is not None and all(math.isfinite(v) for v in corners):
            width, height = corners[2] - corners[0], corners[3] - corners[1]
            annotations.append({**ann, "id": len(annotations) + 1,  # missing or repeated ids: pycocotools' KeyError
                                "iscrowd": 1 if ann.get("iscrowd") in (1, True) else 0,
                                "area": ann["area"] if isinstance(ann.get("area"), (int, float))
                                and not isinstance(ann.get("area"), bool) else width * height})
    gt = COCO()
    gt.dataset = {**data, "annotations": annotations, "info": data.get("info", {}), "licenses": data.get("licenses", [])}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def coco_evaluate(ground_truth: COCO, results: list[dict], image_ids: list[int] | None = None) -> dict:
    """The 12 COCOeval statistics by name; every one is 0.0 when there are no detections."""
    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        if image_ids is not None:
            evaluation.params.imgIds = list(image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(max(v, 0.0)) for name, v in zip(STAT_NAMES, evaluation.stats)}
