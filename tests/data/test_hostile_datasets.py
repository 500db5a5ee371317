"""Datasets from strangers: every broken VOC, COCO or dataset yaml is one DatasetError naming the file (one line
and exit 2 from the CLI), nothing half-written stays in the cache, nothing is linked from outside the dataset, and
a yaml's download: script never runs. Property-based: the VOC and COCO readers never fail any other way."""
import json
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeyolo.cli import main
from spikeyolo.data import DatasetError, prepare_dataset
from spikeyolo.data.coco import read_coco
from spikeyolo.data.voc import read_voc, voc_class_names, voc_split_ids
from tests.conftest import ROOT, make_voc

MARKER_SCRIPT = "import pathlib; pathlib.Path(r'{marker}').write_text('ran')"


def no_temporaries(cache: Path) -> None:
    assert not [p for p in cache.rglob("*tmp*")], list(cache.rglob("*tmp*"))


def voc_case(root: Path, case: str) -> tuple[Path, str]:
    voc = make_voc(root / "voc", count=6, degenerate=False)
    if case == "missing-xml":
        (voc / "Annotations/img001.xml").unlink()
        return voc, "no annotation"
    if case == "not-an-image":
        (voc / "JPEGImages/img002.jpg").write_text("hello")
        return voc, "img002.jpg .VOC id img002. is not an image spikeyolo can read"
    if case == "duplicate-id":
        with open(voc / "ImageSets/Main/trainval.txt", "a") as f:
            f.write("img000\n")
        return voc, "lists id img000 twice"
    if case == "id-is-a-path":
        with open(voc / "ImageSets/Main/trainval.txt", "a") as f:
            f.write("../../outside\n")
        return voc, "not a plain relative name"
    if case == "filename-escapes":
        xml = voc / "Annotations/img000.xml"
        xml.write_text(xml.read_text().replace("<filename>img000.jpg", "<filename>../../../../etc/hostname"))
        return voc, "not a plain relative name"
    if case == "broken-xml":
        (voc / "Annotations/img003.xml").write_text("<annotation><object>")
        return voc, "img003.xml"
    if case == "too-many-objects":  # the loss's assignment would allocate objects × anchors
        xml = voc / "Annotations/img000.xml"
        text = xml.read_text()
        start, end = text.index("<object>"), text.index("</object>") + len("</object>")
        xml.write_text(text[:end] + text[start:end] * 5_000 + text[end:])
        return voc, "img000.xml: more than 5000 objects in one image"
    raise ValueError(case)


VOC_CASES = ["missing-xml", "not-an-image", "duplicate-id", "id-is-a-path", "filename-escapes", "broken-xml",
             "too-many-objects"]


@pytest.mark.parametrize("case", VOC_CASES)
def test_hostile_voc(case, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEYOLO_CACHE", str(tmp_path / "cache"))
    voc, expected = voc_case(tmp_path, case)
    with pytest.raises(DatasetError, match=expected):
        prepare_dataset(voc)
    no_temporaries(tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.yaml"))  # no half-prepared entry


def coco_file(root: Path, mutate) -> Path:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).resolve().parents[2] / "demo/live_demo.png", images / "a.png")
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 4, 20, 20], "iscrowd": 0}],
            "categories": [{"id": 3, "name": "thing"}]}
    changed = mutate(data)
    path = root / "annotations" / "instances_val.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data if changed is None else changed))
    return path


COCO_CASES = {
    "top-level-list": (lambda d: [d], "holds a list"),
    "no-file-name": (lambda d: d["images"][0].pop("file_name") and None, "needs file_name"),
    "no-width": (lambda d: d["images"][0].pop("width") and None, "needs width"),
    "no-id": (lambda d: d["images"][0].pop("id") and None, "needs id"),
    "string-id": (lambda d: d["images"][0].__setitem__("id", "1"), "needs id"),
    "bool-width": (lambda d: d["images"][0].__setitem__("width", True), "needs width"),
    "duplicate-file": (lambda d: d["images"].append({**d["images"][0], "id": 2}), "file_name 'a.png' appears"),
    "duplicate-id": (lambda d: d["images"].append({**d["images"][0], "file_name": "b.png"}), "id 1 appears"),
    "no-images": (lambda d: d.__setitem__("images", []), "lists no images"),
    "absolute-file": (lambda d: d["images"][0].__setitem__("file_name", "/etc/hostname"), "plain relative name"),
    "climbing-file": (lambda d: d["images"][0].__setitem__("file_name", "../../x.png"), "plain relative name"),
    "huge-image": (lambda d: d["images"][0].__setitem__("width", 10**9), "size 1000000000x48"),
    "annotation-not-object": (lambda d: d["annotations"].append(7), "annotation"),
    "categories-not-list": (lambda d: d.__setitem__("categories", {}), "lacks categories"),
    "too-many-objects": (lambda d: d.__setitem__("annotations", [
        {"id": i, "image_id": 1, "category_id": 3, "bbox": [i % 40, 4, 20, 20], "iscrowd": 0} for i in range(5_001)]),
        "image 1: more than 5000 objects in one image"),
    "too-many-classes": (lambda d: d.__setitem__("categories", [{"id": i, "name": f"c{i}"} for i in range(10_001)]),
                         "10001 classes"),
}


@pytest.mark.parametrize("case", sorted(COCO_CASES))
def test_hostile_coco(case, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEYOLO_CACHE", str(tmp_path / "cache"))
    mutate, expected = COCO_CASES[case]
    path = coco_file(tmp_path / "coco", mutate)
    with pytest.raises(DatasetError, match=expected):
        prepare_dataset(path)
    no_temporaries(tmp_path / "cache")


@pytest.mark.parametrize("bbox", [["4", "4", "20", "20"], [4, 4, float("nan"), 20], [4, 4, 20], None, [True, 4, 2, 2],
                                  [4, 4, float("inf"), 20]])
def test_coco_boxes_that_are_not_numbers_are_skipped_and_counted(bbox, tmp_path):
    path = coco_file(tmp_path / "coco", lambda d: d["annotations"][0].__setitem__("bbox", bbox))
    records, _, _, audit = read_coco(path)
    assert records[0].boxes == [] and audit.skipped == 1


def yolo_dataset(root: Path, voc_dataset: Path, marker: Path, val: str = "images/val") -> Path:
    """A YOLO-layout copy of the shapes dataset with a yaml whose download: script would create ``marker``."""
    prepared = prepare_dataset(voc_dataset).parent
    for split, source in (("train", "train"), ("val", "val")):
        for kind in ("images", "labels"):
            shutil.copytree(prepared / kind / source, root / kind / split)
    config = {"path": str(root), "train": "images/train", "val": val, "names": {0: "bar", 1: "square"},
              "download": MARKER_SCRIPT.format(marker=marker)}
    (root / "data.yaml").write_text(yaml.safe_dump(config))
    return root / "data.yaml"


def test_a_yaml_download_script_never_runs(voc_dataset, tmp_path, capsys):
    marker = tmp_path / "marker"
    data = yolo_dataset(tmp_path / "ds", voc_dataset, marker, val="images/missing")
    with pytest.raises(DatasetError, match="never downloads"):
        prepare_dataset(data)
    from tests.eval.test_val_cli import live_model_two_classes
    from spikeyolo.quantize.checkpoint import save_detector

    weights = save_detector(live_model_two_classes(), tmp_path / "w.safetensors", imgsz=64)
    assert main(["val", "--weights", str(weights), "--data", str(data), "--timesteps", "1",
                 "--project", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "images/missing not found" in err[0] and not marker.exists()


def test_a_yaml_dataset_is_read_from_the_cache_and_left_untouched(voc_dataset, tmp_path, capsys):
    """The prepared copy has no download: and links the folders, so ultralytics' labels caches land in the cache."""
    marker = tmp_path / "marker"
    data = yolo_dataset(tmp_path / "ds", voc_dataset, marker)
    before = sorted(str(p) for p in (tmp_path / "ds").rglob("*"))
    prepared = prepare_dataset(data)
    assert "download" not in yaml.safe_load(prepared.read_text())
    from tests.eval.test_val_cli import live_model_two_classes
    from spikeyolo.quantize.checkpoint import save_detector

    weights = save_detector(live_model_two_classes(), tmp_path / "w.safetensors", imgsz=64)
    assert main(["val", "--weights", str(weights), "--data", str(data), "--timesteps", "1", "--imgsz", "64",
                 "--no-ann", "--project", str(tmp_path / "runs")]) == 0
    assert sorted(str(p) for p in (tmp_path / "ds").rglob("*")) == before and not marker.exists()
    assert list(prepared.parent.rglob("*.cache"))  # ultralytics' labels cache, in spikeyolo's cache


def test_yaml_without_val_is_one_line(tmp_path, capsys):
    (tmp_path / "d.yaml").write_text("train: images\nnames: [a]\n")
    assert main(["convert", str(ROOT / "weights/bccd-yolov8n-qcfs.safetensors"), "--mode", "channel", "--calib",
                 str(tmp_path / "d.yaml"), "--project", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks val" in err[0] and str(tmp_path / "d.yaml") in err[0]
    assert not (tmp_path / "o").exists()


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
NUMBERISH = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True), TEXT, st.none(), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.lists(st.tuples(st.sampled_from(["name", "difficult", "xmin", "ymin", "xmax", "ymax", "filename"]),
                                 NUMBERISH), max_size=8), raw=st.booleans(), junk=st.binary(max_size=40))
def test_voc_reader_fuzzed(fields, raw, junk, tmp_path_factory):
    """Random XML contents: the reader returns records or raises DatasetError, nothing else."""
    voc = make_voc(tmp_path_factory.mktemp("fuzz") / "voc", count=2, degenerate=False)
    xml = voc / "Annotations/img000.xml"
    if raw:
        xml.write_bytes(junk)
    else:
        from xml.sax.saxutils import escape
        body = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields)
        xml.write_text(f"<annotation><object>{body}<bndbox>{body}</bndbox></object></annotation>")
    try:
        ids = voc_split_ids(voc, "trainval")
        records, _ = read_voc(voc, "trainval", voc_class_names(voc, ids))
    except DatasetError:
        return
    for record in records:
        assert all(0 <= b[1] < b[3] <= record.width and 0 <= b[2] < b[4] <= record.height for b in record.boxes)


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9), st.floats(), TEXT),
                       lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
                       max_leaves=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=JSONISH, annotations=JSONISH, categories=JSONISH, image=st.dictionaries(
    st.sampled_from(["id", "file_name", "width", "height"]), JSONISH, max_size=4))
def test_coco_reader_fuzzed(images, annotations, categories, image, tmp_path_factory):
    """Random COCO structures: records (with boxes inside their images) or DatasetError, nothing else."""
    root = tmp_path_factory.mktemp("fuzz")
    path = coco_file(root, lambda d: {"images": [image] if not isinstance(images, list) else images + [image],
                                      "annotations": annotations, "categories": categories})
    try:
        records, _, _, _ = read_coco(path)
    except DatasetError:
        return
    for record in records:
        assert all(0 <= b[1] < b[3] <= record.width and 0 <= b[2] < b[4] <= record.height for b in record.boxes)


@pytest.mark.parametrize("line,expected", [("0 0.5 0.5 0.2", "expected 5 numbers"),
                                           ("x 0.5 0.5 0.2 0.2", "numbers only"),
                                           ("7 0.5 0.5 0.2 0.2", "class 7.0 is not one of 0..1"),
                                           ("0 nan 0.5 0.2 0.2", "not finite"), ("0 1.5 0.5 0.2 0.2", "normalized"),
                                           ("0.5 0.5 0.5 0.2 0.2", "class 0.5")])
def test_a_broken_yolo_label_is_one_error_naming_its_line(line, expected, voc_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEYOLO_CACHE", str(tmp_path / "cache"))
    data = yolo_dataset(tmp_path / "ds", voc_dataset, tmp_path / "marker")
    label = sorted((tmp_path / "ds/labels/train").glob("*.txt"))[0]
    label.write_text(label.read_text() + line + "\n")
    with pytest.raises(DatasetError, match=f"{label.name}:\\d+: .*{expected}"):
        prepare_dataset(data)
    no_temporaries(tmp_path / "cache")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="0123456789.-e naninf\n\t", max_size=80))
def test_yolo_label_reader_fuzzed(text, tmp_path_factory):
    """Random label text: rows of 5 (or a class and polygon) finite numbers in range, or DatasetError."""
    from spikeyolo.data.yolo import read_yolo_labels

    path = tmp_path_factory.mktemp("fuzz") / "a.txt"
    path.write_text(text)
    try:
        rows = read_yolo_labels(path, classes=3)
    except DatasetError:
        return
    for row in rows:
        assert row[0] in (0, 1, 2) and all(0 <= v <= 1 for v in row[1:]) and (len(row) == 5 or len(row) % 2)


def test_a_coco_supercategory_that_is_not_a_name_is_ignored(tmp_path):
    """supercategory is free text in COCO: a list there (unhashable) once crashed with a traceback."""
    path = coco_file(tmp_path / "coco", lambda d: d["categories"][0].__setitem__("supercategory", [1, 2]))
    records, names, _, _ = read_coco(path)
    assert names == ["thing"] and len(records[0].boxes) == 1


def test_a_dataset_yaml_of_megabytes_is_refused_before_parsing(tmp_path, capsys):
    """10^6 class names: minutes and gigabytes to parse; refused by its size in one line."""
    from spikeyolo.cli import main

    (tmp_path / "images").mkdir()
    spec = tmp_path / "d.yaml"
    spec.write_text("train: images\nval: images\nnames:\n" + "".join(f"  - class{i}\n" for i in range(200_000)))
    assert main(["data", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"dataset yaml {spec} is 2.9 MB" in err[0] and "at most 1 MB" in err[0]
