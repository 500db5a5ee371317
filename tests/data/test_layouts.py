"""Every layout `--data` reads, on tiny generated fixtures (and each layout's usual mistakes), and on the real sets."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from spikeyolo.cli import main
from spikeyolo.data import DatasetError, prepare_dataset
from spikeyolo.data.layouts import find_layout
from spikeyolo.data.summary import dataset_summary
from spikeyolo.data.voc import held_out
from spikeyolo.eval.evaluators import COCOEvaluator, VOCEvaluator, dataset_evaluator
from tests.conftest import SHARED, make_voc

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets not present")


def write_coco(json_path: Path, images: Path, names: list[str], count: int, first_id: int = 1,
               group: str | None = None, prefix: str = "im") -> Path:
    """``count`` 32x32 images in ``images`` and their instances JSON: image i has one box of class i % len(names);
    category ids start at 7 (not 0 or 1: the ids must be kept, not renumbered); ``group`` adds Roboflow's id-0
    supercategory."""
    images.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    categories = [{"id": 7 + i, "name": n, "supercategory": group or n} for i, n in enumerate(names)]
    if group:
        categories.insert(0, {"id": 0, "name": group, "supercategory": "none"})
    rng = np.random.default_rng(first_id)
    entries, annotations = [], []
    for i in range(count):
        name = f"{prefix}{first_id + i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / name)
        entries.append({"id": first_id + i, "file_name": name, "width": 32, "height": 32})
        annotations.append({"id": first_id + i, "image_id": first_id + i, "category_id": 7 + i % len(names),
                            "bbox": [2, 3, 10 + i % 5, 12], "area": 120.0, "iscrowd": 0})
    json_path.write_text(json.dumps({"images": entries, "annotations": annotations, "categories": categories}))
    return json_path


def prepared(data_yaml: Path) -> dict:
    return json.loads((data_yaml.parent / "source.json").read_text())


def images_of(data_yaml: Path, role: str) -> list[str]:
    return sorted(p.name for p in (data_yaml.parent / "images" / role).iterdir())


# --- COCO root and Roboflow export -------------------------------------------------------------------------------

def coco_root(root: Path, names=("cat", "dog")) -> Path:
    write_coco(root / "annotations/instances_train2017.json", root / "train2017", list(names), 6)
    write_coco(root / "annotations/instances_val2017.json", root / "val2017", list(names), 3, first_id=100)
    return root


def test_coco_root_trains_on_train_and_validates_on_val(tmp_path):
    data = prepare_dataset(coco_root(tmp_path / "coco"))
    assert len(images_of(data, "train")) == 6 and images_of(data, "val") == ["im100.png", "im101.png", "im102.png"]
    meta = prepared(data)
    assert meta["category_ids"] == [7, 8] and meta["summary"]["val"]["split"] == "val2017"
    evaluator = dataset_evaluator(data, "val")
    assert isinstance(evaluator, COCOEvaluator) and sorted(evaluator.ids.values()) == [100, 101, 102]
    assert dataset_evaluator(data, "train").ids["im001"] == 1  # every split keeps its own JSON


def test_coco_root_with_val_only_says_val_serves_both(tmp_path, caplog):
    root = tmp_path / "tiny"
    write_coco(root / "annotations/instances_val2017.json", root / "val2017", ["cat"], 2)
    with caplog.at_level(logging.WARNING, logger="spikeyolo.data"):
        data = prepare_dataset(root)
    assert "serves as both train and val" in caplog.text and images_of(data, "train") == images_of(data, "val")


def test_coco_root_unknown_split_names_those_it_has(tmp_path):
    with pytest.raises(DatasetError, match="no split 'train2014': its splits are train2017, val2017"):
        prepare_dataset(coco_root(tmp_path / "coco"), train_split="train2014")


def test_coco_root_splits_with_different_categories_are_refused(tmp_path):
    root = coco_root(tmp_path / "coco")
    write_coco(root / "annotations/instances_val2017.json", root / "val2017", ["cat", "cow"], 3, first_id=100)
    with pytest.raises(DatasetError, match="different categories"):
        prepare_dataset(root)


def roboflow(root: Path) -> Path:
    for split, count, first in (("train", 6, 1), ("valid", 3, 50), ("test", 2, 80)):
        write_coco(root / split / "_annotations.coco.json", root / split, ["RBC", "WBC"], count, first, group="cells")
    return root


def test_roboflow_export_reads_three_splits_without_its_group_category(tmp_path):
    data = prepare_dataset(roboflow(tmp_path / "rf"))
    config = yaml.safe_load(data.read_text())
    assert config["names"] == {0: "RBC", 1: "WBC"}  # id 0 'cells' is the export's group, not a class
    assert (len(images_of(data, "train")), len(images_of(data, "val")), len(images_of(data, "test"))) == (6, 3, 2)
    assert prepared(data)["category_ids"] == [7, 8]
    assert sorted(dataset_evaluator(data, "test").ids.values()) == [80, 81]
    assert find_layout(tmp_path / "rf").kind.startswith("Roboflow COCO export")


def test_roboflow_export_whose_file_names_differ_says_how_many_and_shows_one(tmp_path):
    root = roboflow(tmp_path / "rf")
    for image in sorted((root / "valid").glob("*.png"))[:2]:
        image.rename(image.with_name(image.stem + "_png.rf.0a1b2c.png"))
    with pytest.raises(DatasetError, match=r"2 of 3 listed image\(s\) are not in .*valid, e\.g\. 'im050\.png'; the "
                                           r"folder has e\.g\. 'im050_png\.rf\.0a1b2c\.png'"):
        prepare_dataset(root)


# --- VOC: devkit, with and without ImageSets, labelImg --------------------------------------------------------------

def vocdevkit(root: Path) -> Path:
    make_voc(root / "VOCdevkit" / "VOC2007", count=8, degenerate=False)  # trainval 6, test 2
    v12 = make_voc(root / "VOCdevkit" / "VOC2012", count=8, seed=1, degenerate=False)
    for xml in (v12 / "Annotations").glob("*.xml"):  # VOC2012 ids are 2012_…, as the real ones are 2008_…
        xml.rename(xml.with_name(f"2012_{xml.name}"))
        image = v12 / "JPEGImages" / f"{xml.stem}.jpg"
        image.rename(image.with_name(f"2012_{image.name}"))
        fixed = (v12 / "Annotations" / f"2012_{xml.name}")
        fixed.write_text(fixed.read_text().replace("<filename>", "<filename>2012_"))
    ids = [f"2012_img{i:03d}" for i in range(8)]
    (v12 / "ImageSets/Main/trainval.txt").write_text("\n".join(ids[:5]) + "\n")
    (v12 / "ImageSets/Main/val.txt").write_text("\n".join(ids[5:]) + "\n")
    (v12 / "ImageSets/Main/test.txt").unlink()
    return root


def test_vocdevkit_trains_on_07_12_trainval_and_tests_on_07_test(tmp_path):
    data = prepare_dataset(vocdevkit(tmp_path / "devkit"))
    summary = prepared(data)["summary"]
    assert summary["train"]["split"] == "VOC2007/trainval+VOC2012/trainval" and summary["train"]["images"] == 11
    assert summary["val"]["split"] == "VOC2007/test" and images_of(data, "val") == ["img006.jpg", "img007.jpg"]
    evaluator = dataset_evaluator(data, "val")
    assert isinstance(evaluator, VOCEvaluator) and sorted(evaluator.truth) == ["img006", "img007"]


def test_vocdevkit_other_splits_by_year(tmp_path):
    root = vocdevkit(tmp_path / "devkit")
    data = prepare_dataset(root / "VOCdevkit", train_split="2012/trainval", val_split="VOC2012/val")
    assert images_of(data, "val") == ["2012_img005.jpg", "2012_img006.jpg", "2012_img007.jpg"]
    assert sorted(dataset_evaluator(data, "val").truth) == ["2012_img005", "2012_img006", "2012_img007"]
    with pytest.raises(DatasetError, match="the year one of 2007, 2012"):
        prepare_dataset(root, val_split="2010/val")
    with pytest.raises(DatasetError, match=r"VOC2012/ImageSets/Main/test.txt not found.*\(trainval, val\)"):
        prepare_dataset(root, val_split="2012/test")


def test_voc_folder_without_imagesets_is_split_by_image_id(tmp_path, caplog):
    root = make_voc(tmp_path / "plain", count=20, degenerate=False)
    shutil.rmtree(root / "ImageSets")
    with caplog.at_level(logging.WARNING, logger="spikeyolo.data"):
        data = prepare_dataset(root)
    assert "no ImageSets/Main: split by image id" in caplog.text
    val = [f"img{i:03d}" for i in range(20) if held_out(f"img{i:03d}")]
    assert 0 < len(val) < 20 and [Path(n).stem for n in images_of(data, "val")] == val
    assert len(images_of(data, "train")) == 20 - len(val)
    make_voc(tmp_path / "more", count=30, degenerate=False)  # more images: the old ones keep their side
    for name in ("Annotations", "JPEGImages"):
        for f in (tmp_path / "more" / name).glob("img02*"):
            shutil.copy(f, root / name)
    grown = prepare_dataset(root)
    assert set(val) <= {Path(n).stem for n in images_of(grown, "val")}
    assert not set(val) & {Path(n).stem for n in images_of(grown, "train")}


def test_labelimg_folder_xml_beside_images(tmp_path):
    voc = make_voc(tmp_path / "voc", count=12, degenerate=False)
    folder = tmp_path / "labelimg"
    folder.mkdir()
    for f in [*(voc / "Annotations").iterdir(), *(voc / "JPEGImages").iterdir()]:
        shutil.copy(f, folder)
    data = prepare_dataset(folder, train_split="all", val_split="all")
    assert prepared(data)["kind"].startswith("labelImg folder") and len(images_of(data, "val")) == 12
    assert yaml.safe_load(data.read_text())["names"] == {0: "bar", 1: "square"}


def test_xml_folder_beside_an_image_folder(tmp_path):
    voc = make_voc(tmp_path / "voc", count=12, degenerate=False)
    folder = tmp_path / "shots"
    (folder / "annotations").mkdir(parents=True)
    (folder / "Images").mkdir()
    for f in (voc / "Annotations").iterdir():
        shutil.copy(f, folder / "annotations")
    for f in (voc / "JPEGImages").iterdir():
        shutil.copy(f, folder / "Images")
    data = prepare_dataset(folder, train_split="all", val_split="all")
    assert prepared(data)["kind"].startswith("VOC XML folder and image folder") and len(images_of(data, "val")) == 12


def test_train_and_test_folders_of_a_labelimg_export(tmp_path):
    """train/ and test/ (XML beside the images, or annotations/ + images/): test is the val role."""
    voc = make_voc(tmp_path / "voc", count=10, degenerate=False)
    export = tmp_path / "export"
    for image_id, where in [(f"img{i:03d}", "train" if i < 7 else "test") for i in range(10)]:
        xml, image = voc / "Annotations" / f"{image_id}.xml", voc / "JPEGImages" / f"{image_id}.jpg"
        target = export / where
        if where == "train":  # XML beside the images
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(xml, target), shutil.copy(image, target)
        else:  # folders of their own
            (target / "annotations").mkdir(parents=True, exist_ok=True), (target / "images").mkdir(exist_ok=True)
            shutil.copy(xml, target / "annotations"), shutil.copy(image, target / "images")
    data = prepare_dataset(export)
    summary = prepared(data)["summary"]
    assert summary["train"]["split"] == "train" and summary["val"]["split"] == "test"
    assert images_of(data, "val") == ["img007.jpg", "img008.jpg", "img009.jpg"] and len(images_of(data, "train")) == 7
    assert sorted(dataset_evaluator(data, "val").truth) == ["img007", "img008", "img009"]
    shutil.copytree(export / "test", export / "val")  # a val folder takes the val role; test becomes the third
    assert set(prepared(prepare_dataset(export))["summary"]) == {"train", "val", "test"}
    with pytest.raises(DatasetError, match=r"has no split 'dev': its splits are test, train, val"):
        prepare_dataset(export, val_split="dev")


# --- spikeyolo dataset yaml ------------------------------------------------------------------------------------------

def test_spikeyolo_yaml_points_at_coco_jsons_and_image_folders(tmp_path):
    write_coco(tmp_path / "labels/a.json", tmp_path / "pics/a", ["x", "y"], 4)
    write_coco(tmp_path / "labels/b.json", tmp_path / "pics/b", ["x", "y"], 2, first_id=40)
    spec = tmp_path / "mine.yaml"
    spec.write_text(yaml.safe_dump({"format": "coco", "train": {"annotations": "labels/a.json", "images": "pics/a"},
                                    "val": {"annotations": "labels/b.json", "images": "pics/b"}}))
    data = prepare_dataset(spec)
    assert images_of(data, "val") == ["im040.png", "im041.png"] and len(images_of(data, "train")) == 4
    assert sorted(dataset_evaluator(data, "val").ids.values()) == [40, 41]


def test_spikeyolo_yaml_voc_with_an_id_list(tmp_path):
    voc = make_voc(tmp_path / "voc", count=8, degenerate=False)
    spec = tmp_path / "voc.yaml"
    spec.write_text(yaml.safe_dump({"format": "voc", "path": "voc",
                                    "train": {"annotations": "Annotations", "images": "JPEGImages",
                                              "ids": "ImageSets/Main/trainval.txt"},
                                    "val": {"annotations": "Annotations", "images": "JPEGImages",
                                            "ids": "ImageSets/Main/test.txt"}}))
    data = prepare_dataset(spec)
    assert images_of(data, "val") == ["img006.jpg", "img007.jpg"]
    spec.write_text(yaml.safe_dump({"format": "voc", "train": {"annotations": "nowhere", "images": "."}}))
    with pytest.raises(DatasetError, match="train .*nowhere not found"):
        prepare_dataset(spec)
    assert voc.is_dir()


@pytest.mark.parametrize("content, expected", [
    ({"format": "tfrecord"}, "format must be coco or voc"),
    ({"format": "coco", "train": "a.json", "val": "b.json"}, "train must be a mapping with annotations"),
])
def test_spikeyolo_yaml_mistakes(content, expected, tmp_path):
    spec = tmp_path / "d.yaml"
    spec.write_text(yaml.safe_dump(content))
    with pytest.raises(DatasetError, match=expected):
        prepare_dataset(spec)


def test_unknown_folder_says_what_was_expected_and_found(tmp_path):
    (tmp_path / "stuff" / "pics").mkdir(parents=True)
    (tmp_path / "stuff" / "notes.json").write_text("{}")
    with pytest.raises(DatasetError, match=r"a labelImg folder .*found 1 folder\(s\) \(pics\), 0 XML, 1 JSON"):
        prepare_dataset(tmp_path / "stuff")


# --- spikeyolo data, and the real datasets ----------------------------------------------------------------------------

def test_data_command_prints_splits_classes_and_skips(tmp_path, capsys):
    root = roboflow(tmp_path / "rf")
    annotations = json.loads((root / "train/_annotations.coco.json").read_text())
    annotations["annotations"][0]["iscrowd"] = 1
    annotations["annotations"][1]["bbox"] = [40, 40, 5, 5]  # outside the 32x32 image
    (root / "train/_annotations.coco.json").write_text(json.dumps(annotations))
    assert main(["data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Roboflow COCO export" in out and "train ← train: 6 images, 4 boxes" in out and "RBC 2, WBC 2" in out
    assert "test  ← test: 2 images" in out
    assert "skipped 2 box(es) (1 crowd (left to the COCO evaluator); 1 under 1 px once clipped to the image)" in out


def test_data_command_bad_path_is_one_line(tmp_path, capsys):
    assert main(["data", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@needs_shared
def test_real_oi5_coco_root():
    summary = dataset_summary(SHARED / "oi5")
    assert summary["kind"].startswith("COCO root")
    assert {role: split["images"] for role, split in summary["splits"].items()} == {"train": 600, "val": 72}
    assert sum(summary["splits"]["val"]["boxes"].values()) == 226
    assert list(summary["splits"]["val"]["boxes"]) == ["Apple", "Bicycle", "Bird", "Boat", "Person"]


@needs_shared
def test_real_coco_tiny_keeps_original_category_ids():
    data = prepare_dataset(SHARED / "coco-tiny")
    meta = prepared(data)
    assert len(meta["category_ids"]) == 80 and meta["category_ids"][-1] == 90
    assert sum(meta["summary"]["val"]["boxes"].values()) == 815 - 11  # 11 crowd boxes are the evaluator's
