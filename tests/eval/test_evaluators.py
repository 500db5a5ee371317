"""VOC AP against hand-computed values, COCO against a direct pycocotools run, perfect detections score 1."""
import numpy as np
from pycocotools.coco import COCO
import pytest
from pycocotools.cocoeval import COCOeval

from spikeyolo.data.coco import read_coco
from spikeyolo.data.records import ImageRecord
from spikeyolo.data.voc import read_voc
from spikeyolo.eval.coco import coco_evaluate, coco_results, load_ground_truth
from spikeyolo.detections import Detections
from spikeyolo.eval.voc import voc_ap, voc_evaluate
from tests.conftest import SHARED, needs_shared

COCO_JSON = SHARED / "coco-tiny/annotations/instances_val2017.json"


def _record(boxes, difficult=None):
    return ImageRecord("x.jpg", 200, 200, boxes=boxes, difficult=difficult or [False] * len(boxes))


def _det(rows):
    return Detections([r[:4] for r in rows], [r[4] for r in rows], [r[5] for r in rows])


def hand_fixture():
    truth = {"A": _record([(0, 0, 0, 9, 9), (0, 20, 20, 29, 29), (0, 40, 40, 49, 49), (1, 60, 60, 79, 79)],
                          [False, False, True, False]),
             "B": _record([(0, 0, 0, 9, 9), (1, 10, 10, 29, 29)])}
    detections = {"A": _det([(0, 0, 9, 9, .9, 0), (40, 40, 49, 49, .8, 0), (0, 0, 9, 9, .6, 0),
                             (60, 60, 79, 79, .9, 1), (5, 5, 9, 9, .99, 2)]),
                  "B": _det([(50, 50, 59, 59, .7, 0), (0, 0, 9, 9, .5, 0),
                             (100, 100, 110, 110, .8, 1), (10, 10, 29, 29, .7, 1)])}
    return detections, truth


def test_voc_ap_equals_hand_computation():
    """Class 0: TP, difficult (ignored), FP, duplicate (FP), TP over 3 positives → P/R by hand.
    Class 1: TP, FP, TP over 2 positives. Class 2 has no ground truth: no AP, not in the mean."""
    detections, truth = hand_fixture()
    result = voc_evaluate(detections, truth, ["a", "b", "absent"])
    # class 0: recall 1/3,1/3,1/3,1/3,2/3; precision 1,1,1/2,1/3,1/2
    assert result["ap07"]["a"] == pytest.approx((4 * 1 + 3 * 0.5) / 11)
    assert result["ap"]["a"] == pytest.approx(1 / 3 * 1 + 1 / 3 * 0.5)
    # class 1: recall 1/2,1/2,1; precision 1,1/2,2/3
    assert result["ap07"]["b"] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    assert result["ap"]["b"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert result["ap"]["absent"] is None and result["ap07"]["absent"] is None
    assert result["map"] == pytest.approx((0.5 + 5 / 6) / 2)
    assert result["map07"] == pytest.approx((5.5 / 11 + 28 / 33) / 2)


def test_voc_edge_cases():
    _, truth = hand_fixture()
    empty = voc_evaluate({}, truth, ["a", "b"])
    assert empty["map"] == 0.0 and empty["ap"]["a"] == 0.0  # no detections: defined, zero
    with_empty_image = {**truth, "C": _record([])}
    detections = {"C": _det([(1, 1, 5, 5, .9, 0)])}
    assert voc_evaluate(detections, with_empty_image, ["a", "b"])["ap"]["a"] == 0.0  # FP on an empty image
    assert voc_ap(np.array([]), np.array([]), True) == 0.0


@needs_shared
def test_bccd_ground_truth_scores_one():
    root = SHARED / "bccd"
    records, _ = read_voc(root, "test", ["Platelets", "RBC", "WBC"])
    truth = {r.image_id: r for r in records}
    detections = {r.image_id: Detections([b[1:] for b in r.boxes], np.ones(len(r.boxes)), [b[0] for b in r.boxes])
                  for r in records}
    result = voc_evaluate(detections, truth, ["Platelets", "RBC", "WBC"])
    assert result["map"] == 1.0 and result["map07"] == 1.0


@needs_shared
def test_coco_tiny_ground_truth_scores_one():
    gt = load_ground_truth(COCO_JSON)
    _, _, category_ids, _ = read_coco(COCO_JSON)
    stats = coco_evaluate(gt, coco_results(ground_truth_as_detections(gt, category_ids), category_ids))
    assert stats["map50_95"] == 1.0 and stats["map50"] == 1.0 and stats["map75"] == 1.0


@needs_shared
def test_coco_equals_direct_pycocotools():
    gt = load_ground_truth(COCO_JSON)
    _, _, category_ids, _ = read_coco(COCO_JSON)
    rng = np.random.default_rng(0)
    noisy = {}
    for image_id, det in ground_truth_as_detections(gt, category_ids).items():
        boxes = det.boxes + rng.normal(0, 4, det.boxes.shape)
        classes = np.where(rng.random(len(boxes)) < 0.1, rng.integers(0, 80, len(boxes)), det.classes)
        noisy[image_id] = Detections(boxes, rng.random(len(boxes)), classes)
    results = coco_results(noisy, category_ids)
    ours = coco_evaluate(gt, results)
    direct = COCOeval(gt, gt.loadRes(results), "bbox")
    direct.evaluate()
    direct.accumulate()
    direct.summarize()
    assert ours["map50_95"] == pytest.approx(direct.stats[0], abs=1e-12)
    assert ours["map50"] == pytest.approx(direct.stats[1], abs=1e-12)
    assert 0.1 < ours["map50_95"] < 1.0
    assert results[0]["category_id"] in category_ids  # original COCO ids, not contiguous indices


@needs_shared
def test_coco_without_detections_is_zero():
    assert coco_evaluate(load_ground_truth(COCO_JSON), [])["map50_95"] == 0.0


def ground_truth_as_detections(ground_truth: COCO, category_ids: list[int]) -> dict[int, Detections]:
    """The non-crowd annotations as perfect detections (to check the evaluator)."""
    index = {cid: i for i, cid in enumerate(category_ids)}
    found: dict[int, list] = {i: [] for i in ground_truth.getImgIds()}
    for ann in ground_truth.dataset["annotations"]:
        if not ann.get("iscrowd", 0):
            x, y, w, h = ann["bbox"]
            found[ann["image_id"]].append((x, y, x + w, y + h, index[ann["category_id"]]))
    return {i: Detections(np.array([b[:4] for b in boxes]), np.ones(len(boxes)), np.array([b[4] for b in boxes]))
            for i, boxes in found.items()}


def test_coco_ground_truth_takes_the_training_checks(tmp_path):
    """Boxes that are a string, three numbers, a dict or not finite are left out (as training skips them) instead of
    reaching pycocotools' tracebacks; missing iscrowd and area are filled: the good boxes, detected exactly, score 1."""
    import json

    from tests.data.test_layouts import write_coco

    path = write_coco(tmp_path / "annotations" / "instances.json", tmp_path / "images", ["cat", "dog"], 4)
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        ann.pop("iscrowd"), ann.pop("area")
    bad = ["1,2,3,4", [1, 2, 3], {"counts": 1}, [1, 2, float("nan"), 4]]
    data["annotations"] += [{"id": 100 + i, "image_id": 1, "category_id": 7, "bbox": box} for i, box in enumerate(bad)]
    path.write_text(json.dumps(data))
    gt = load_ground_truth(path)
    assert len(gt.dataset["annotations"]) == 4
    _, _, category_ids, _ = read_coco(path)
    perfect = ground_truth_as_detections(gt, category_ids)
    assert coco_evaluate(gt, coco_results(perfect, category_ids))["map50"] == pytest.approx(1.0)


def test_coco_ground_truth_without_annotation_ids_is_evaluated(tmp_path):
    """Annotation ids are optional in a stranger's file (and may repeat): numbered anew, not pycocotools' KeyError."""
    import json

    from tests.data.test_layouts import write_coco

    path = write_coco(tmp_path / "annotations" / "instances.json", tmp_path / "images", ["cat"], 3)
    data = json.loads(path.read_text())
    data["annotations"][0].pop("id")
    data["annotations"][1]["id"] = data["annotations"][2]["id"]
    path.write_text(json.dumps(data))
    gt = load_ground_truth(path)
    _, _, category_ids, _ = read_coco(path)
    perfect = ground_truth_as_detections(gt, category_ids)
    assert coco_evaluate(gt, coco_results(perfect, category_ids))["map50"] == pytest.approx(1.0)
