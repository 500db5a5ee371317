"""Dataset readers and preparation: VOC, COCO, YOLO yaml; bad annotations; the source stays untouched."""
import json
import logging
import os

import pytest
import yaml

from spikeyolo.data import DatasetError, prepare_dataset
from spikeyolo.data.coco import read_coco
from spikeyolo.data.voc import read_voc
from tests.conftest import SHARED, needs_shared, make_voc


def _tree_state(root):
    return sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_voc_to_yolo_labels(voc_dataset, caplog):
    before = _tree_state(voc_dataset)
    with caplog.at_level(logging.WARNING, logger="spikeyolo.data"):
        data_yaml = prepare_dataset(voc_dataset)
    assert _tree_state(voc_dataset) == before  # nothing written into the source
    config = yaml.safe_load(data_yaml.read_text())
    assert config["names"] == {0: "bar", 1: "square"}
    root = data_yaml.parent
    assert len(list((root / "images/train").iterdir())) == 12 and len(list((root / "images/val").iterdir())) == 4
    assert "skipped 2 box(es) (2 under 1 px" in caplog.text and "img000.xml" in caplog.text
    lines = (root / "labels/train/img001.txt").read_text().split("\n")
    cls, cx, cy, w, h = lines[0].split()
    assert cls in ("0", "1") and all(0 < float(v) <= 1 for v in (cx, cy, w, h))
    assert len((root / "labels/train/img000.txt").read_text().split("\n")) == 5  # 4 good boxes + trailing newline


def test_voc_reader_matches_xml(voc_dataset):
    records, audit = read_voc(voc_dataset, "test", ["bar", "square"])
    assert [r.image_id for r in records] == ["img012", "img013", "img014", "img015"]
    assert all(len(r.boxes) == 4 and r.width == 128 for r in records)
    assert audit.skipped == 0


def test_cache_is_reused_and_invalidated(tmp_path):
    voc = make_voc(tmp_path / "v", count=8, degenerate=False)
    first = prepare_dataset(voc)
    assert prepare_dataset(voc) == first
    xml = voc / "Annotations/img000.xml"
    xml.write_text(xml.read_text().replace("<xmin>", "<xmin>1", 1))
    os.utime(xml, ns=(1, 1))
    assert prepare_dataset(voc) != first


@needs_shared
def test_bccd_real_data(caplog):
    with caplog.at_level(logging.WARNING, logger="spikeyolo.data"):
        data_yaml = prepare_dataset(SHARED / "bccd")
    config = yaml.safe_load(data_yaml.read_text())
    assert sorted(config["names"].values()) == ["Platelets", "RBC", "WBC"]
    assert len(list((data_yaml.parent / "images/train").iterdir())) == 292
    assert len(list((data_yaml.parent / "images/val").iterdir())) == 72
    assert "under 1 px" in caplog.text  # BCCD carries broken boxes; they are reported, not fatal


@needs_shared
def test_coco_tiny_keeps_category_ids():
    path = SHARED / "coco-tiny/annotations/instances_val2017.json"
    records, names, category_ids, audit = read_coco(path)
    assert len(records) == 80 and len(names) == 80 and category_ids[-1] == 90 and 12 not in category_ids
    assert all(r.path.is_file() for r in records)
    data_yaml = prepare_dataset(path)
    meta = json.loads((data_yaml.parent / "source.json").read_text())
    assert meta["category_ids"] == category_ids


def test_bad_inputs_give_one_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        prepare_dataset(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="not a dataset spikeyolo reads"):
        prepare_dataset(tmp_path / "x.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json"):
        prepare_dataset(tmp_path / "bad.json")
    (tmp_path / "d.yaml").write_text("foo: 1\n")
    with pytest.raises(DatasetError, match="lacks train, val, names"):
        prepare_dataset(tmp_path / "d.yaml")
    voc = make_voc(tmp_path / "broken", count=4)
    (voc / "Annotations/img001.xml").write_text("<annotation><object>")
    with pytest.raises(DatasetError, match="img001.xml"):
        prepare_dataset(voc)


def _coco_root(root, categories_val=None):
    """A COCO-2017-layout root: annotations/instances_{train,val}2017.json, images in train2017/ and val2017/."""
    from PIL import Image

    (root / "annotations").mkdir(parents=True)
    for split, count in (("train2017", 3), ("val2017", 2)):
        (root / split).mkdir()
        images = []
        for i in range(count):
            Image.new("RGB", (64, 48)).save(root / split / f"{split}_{i}.jpg")
            images.append({"id": i + 1, "file_name": f"{split}_{i}.jpg", "width": 64, "height": 48})
        annotations = [{"id": i + 1, "image_id": i + 1, "category_id": 7, "bbox": [4, 4, 20, 20], "iscrowd": 0}
                       for i in range(count)]
        categories = categories_val if split == "val2017" and categories_val else [{"id": 7, "name": "thing"}]
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": categories}))
    return root


def test_coco_root_trains_on_train_and_validates_on_val(tmp_path):
    from spikeyolo.eval.evaluators import dataset_evaluator

    data_yaml = prepare_dataset(_coco_root(tmp_path / "coco"))
    root = data_yaml.parent
    assert len(list((root / "images/train").iterdir())) == 3 and len(list((root / "images/val").iterdir())) == 2
    assert yaml.safe_load(data_yaml.read_text())["names"] == {0: "thing"}
    assert sorted(dataset_evaluator(data_yaml, "val").ids) == ["val2017_0", "val2017_1"]  # the val JSON's images
    assert sorted(dataset_evaluator(data_yaml, "train").ids) == ["train2017_0", "train2017_1", "train2017_2"]
    with pytest.raises(DatasetError, match="list different categories"):
        prepare_dataset(_coco_root(tmp_path / "mixed", categories_val=[{"id": 8, "name": "other"}]))
