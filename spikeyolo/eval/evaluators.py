"""The dataset's own metric, composed beside ultralytics': VOC AP for VOC folders, pycocotools for COCO."""
from __future__ import annotations

import json
from pathlib import Path

from spikeyolo.data.coco import read_coco
from spikeyolo.data.images import dataset_names
from spikeyolo.data.voc import read_voc
from spikeyolo.eval.coco import coco_evaluate, coco_results, load_ground_truth
from spikeyolo.eval.detections import Detections
from spikeyolo.eval.voc import voc_evaluate


class VOCEvaluator:
    name = "voc"

    def __init__(self, root: Path, split: str, names: list[str]):
        records, _ = read_voc(root, split, names)
        self.truth = {str(r.image_id): r for r in records}
        self.names = names

    def image_key(self, path: str) -> str:
        return Path(path).stem

    def evaluate(self, detections: dict[str, Detections]) -> dict:
        return voc_evaluate(detections, self.truth, self.names)


class COCOEvaluator:
    name = "coco"

    def __init__(self, annotation_file: Path):
        self.ground_truth = load_ground_truth(annotation_file)
        _, _, self.category_ids, _ = read_coco(annotation_file)
        self.ids = {Path(img["file_name"]).stem: img["id"] for img in self.ground_truth.dataset["images"]}

    def image_key(self, path: str) -> int:
        return self.ids[Path(path).stem]

    def results(self, detections: dict[int, Detections]) -> list[dict]:
        return coco_results(detections, self.category_ids)

    def evaluate(self, detections: dict[int, Detections]) -> dict:
        return coco_evaluate(self.ground_truth, self.results(detections), list(self.ids.values()))


def dataset_evaluator(data_yaml: Path, split: str):
    """The evaluator for a dataset prepared by spikeyolo (None for a plain ultralytics yaml)."""
    source_file = Path(data_yaml).parent / "source.json"
    if not source_file.is_file():
        return None
    source = json.loads(source_file.read_text())
    names = dataset_names(data_yaml)
    if source["format"] == "voc":
        voc_split = source["splits"]["train" if split == "train" else "test"]
        return VOCEvaluator(Path(source["source"]), voc_split, names)
    if source["format"] == "coco":  # a COCO root keeps one annotation file per split
        return COCOEvaluator(Path(source.get("sources", {}).get(split, source["source"])))
    return None
