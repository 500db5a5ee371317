"""The dataset's own metric, composed beside ultralytics': VOC AP for VOC folders, pycocotools for COCO."""
from __future__ import annotations

import json
from pathlib import Path

from spikeyolo.data.coco import read_coco
from spikeyolo.data.images import dataset_names
from spikeyolo.data.layouts import COCOPart
from spikeyolo.data.records import BoxAudit
from spikeyolo.data.voc import VOCPart, read_voc_part
from spikeyolo.eval.coco import coco_evaluate, coco_results, load_ground_truth
from spikeyolo.detections import Detections
from spikeyolo.eval.voc import voc_evaluate


class VOCEvaluator:
    name = "voc"

    def __init__(self, parts: list[VOCPart], names: list[str]):
        audit = BoxAudit()
        self.truth = {Path(r.path).stem: r for part in parts for r in read_voc_part(part, names, audit)}
        self.names = names

    def image_key(self, path: str) -> str:
        return Path(path).stem

    def restrict(self, keys) -> None:
        """Only these images count (a run over part of the split)."""
        self.truth = {key: self.truth[key] for key in keys}

    def evaluate(self, detections: dict[str, Detections]) -> dict:
        return voc_evaluate(detections, self.truth, self.names)


class COCOEvaluator:
    name = "coco"

    def __init__(self, annotation_file: Path, images: Path | None = None):
        self.ground_truth = load_ground_truth(annotation_file)
        _, _, self.category_ids, _ = read_coco(annotation_file, images)
        self.ids = {Path(img["file_name"]).stem: img["id"] for img in self.ground_truth.dataset["images"]}

    def image_key(self, path: str) -> int:
        return self.ids[Path(path).stem]

    def restrict(self, keys) -> None:
        """Only these images count (a run over part of the split)."""
        kept = set(keys)
        self.ids = {stem: image_id for stem, image_id in self.ids.items() if image_id in kept}

    def results(self, detections: dict[int, Detections]) -> list[dict]:
        return coco_results(detections, self.category_ids)

    def evaluate(self, detections: dict[int, Detections]) -> dict:
        return coco_evaluate(self.ground_truth, self.results(detections), list(self.ids.values()))


def dataset_evaluator(data_yaml: Path, split: str):
    """The evaluator of one role (train, val, test) of a dataset prepared by spikeyolo, on its original
    annotations (None for an ultralytics yaml: ultralytics' own metric is the only one)."""
    source_file = Path(data_yaml).parent / "source.json"
    if not source_file.is_file():
        return None
    source = json.loads(source_file.read_text())
    if source["format"] == "voc":
        return VOCEvaluator([VOCPart.from_dict(part) for part in source["splits"][split]], dataset_names(data_yaml))
    if source["format"] == "coco":  # one annotation file per split, with its own category ids
        part = COCOPart.from_dict(source["splits"][split][0])
        return COCOEvaluator(part.annotations, part.images)
    return None
