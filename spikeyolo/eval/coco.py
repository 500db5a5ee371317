"""COCO evaluation with pycocotools on the dataset's own annotation file and category ids."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


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
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotation_file))
    gt.dataset.setdefault("info", {})  # loadRes copies these; official files have them, small ones may not
    gt.dataset.setdefault("licenses", [])
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
