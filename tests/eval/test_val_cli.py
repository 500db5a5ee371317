"""spikeyolo val through the CLI: report files and schema, one SNN run for every T, bad inputs."""
import json

import numpy as np
import pytest
import torch

from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.cli import main
from spikeyolo.convert import convert
from spikeyolo.eval.anytime import evaluate_anytime
from spikeyolo.eval.val import check_classes
from spikeyolo.eval.evaluators import dataset_evaluator
from spikeyolo.data import prepare_dataset
from tests.conftest import make_voc


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = live_model_two_classes()
    return save_detector(model, tmp_path_factory.mktemp("w") / "m.safetensors", imgsz=64)


def live_model_two_classes():
    from spikeyolo.quantize import calibrate_thresholds, quantize_model
    from spikeyolo.ultra import build_detection_model
    from tests.conftest import ROOT

    torch.manual_seed(0)
    model = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=2)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    quantize_model(model, 4)
    calibrate_thresholds(model, torch.rand(2, 3, 64, 64))
    model.names = {0: "bar", 1: "square"}
    return model.eval()


def test_val_writes_report(weights, voc_dataset, tmp_path, capsys):
    rc = main(["val", "--weights", str(weights), "--data", str(voc_dataset), "--timesteps", "1,2,4",
               "--imgsz", "64", "--batch", "4", "--project", str(tmp_path)])
    assert rc == 0
    folder = tmp_path / "exp"
    for name in ("report.json", "report.csv", "map_vs_timesteps.png", "firing_rate.png", "map_vs_energy.png",
                 "energy_per_layer.png"):
        assert (folder / name).is_file()
    report = json.loads((folder / "report.json").read_text())
    assert set(report["snn"]) == {"1", "2", "4"} and report["mode"] == "qcfs"
    for t in ("1", "2", "4"):
        entry = report["snn"][t]
        assert {"map50", "map50_95", "sops", "energy_mj", "firing_rate", "voc"} <= set(entry)
        assert 0 <= entry["map50"] <= 1 and entry["energy_mj"] > 0
    assert report["snn"]["4"]["sops"] > report["snn"]["1"]["sops"]  # SOPs accumulate over steps
    cost = report["cost"]
    assert cost["ann_macs"] > cost["first_layer_macs"] > 0 and cost["ann_energy_mj"] > 0
    # a burst of up to 4 spikes counts each: up to 4 spikes per neuron per step
    assert len(cost["layers"]) == 57 and all(0 <= layer["firing_rate"] <= 4 for layer in cost["layers"])
    assert set(cost["energy_models"]) == {"compute", "lemaire"} and "n accumulates" in cost["energy_model"]
    assert set(cost["baselines"]) == {"ann_fp32", "ann_int8", "qcfs_3bit"}
    assert all(report["snn"][t]["energy_lemaire_mj"] > 0 for t in ("1", "2", "4"))
    out = capsys.readouterr().out
    # one set of defaults: a QCFS checkpoint runs bursts of up to L spikes, as in detect and convert
    assert "VOC07" in out and "SNN: qcfs conversion, IF, bursts of up to 4 spikes" in out
    assert report["burst"] == 4 and report["neurons"] == "IF, bursts of up to 4 spikes"
    assert main(["val", "--weights", str(weights), "--data", str(voc_dataset), "--timesteps", "1", "--imgsz", "64",
                 "--project", str(tmp_path), "--snm", "--no-ann", "--precision", "bf16", "--burst", "1"]) == 0
    assert (tmp_path / "exp2" / "report.json").is_file()  # a new run folder, the first kept
    second = json.loads((tmp_path / "exp2" / "report.json").read_text())
    assert second["snm"] is True and second["precision"] == "bf16" and report["precision"] == "fp32"
    assert "signed neurons with memory, binary spikes, bf16 convolutions" in capsys.readouterr().out


def test_a_quick_look_takes_exactly_the_images_asked_and_a_split_by_the_datasets_own_name(weights, voc_dataset,
                                                                                           tmp_path, capsys):
    """--images 3 with batch 4 evaluates 3 images, not a batch's worth; a VOC folder's `test` is its val role."""
    assert main(["val", "--weights", str(weights), "--data", str(voc_dataset), "--timesteps", "1", "--imgsz", "64",
                 "--batch", "4", "--images", "3", "--split", "test", "--no-ann", "--project", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "exp" / "report.json").read_text())
    assert report["images"] == 3 and report["split"] == "val" and report["dataset_split"] == "test"
    assert f"3 images of {voc_dataset}, val split (test)" in capsys.readouterr().out
    assert main(["val", "--weights", str(weights), "--data", str(voc_dataset), "--timesteps", "1", "--imgsz", "64",
                 "--split", "trainval", "--images", "2", "--no-ann", "--project", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "exp2" / "report.json").read_text())
    assert report["images"] == 2 and report["split"] == "train" and report["dataset_split"] == "trainval"


def test_one_run_gives_every_t(weights, voc_dataset):
    """Detections at T read from one run to max(T) equal those of a separate run to T."""
    from spikeyolo.quantize.checkpoint import load_detector

    ann, _ = load_detector(weights)
    snn = convert(ann, "qcfs")
    data = prepare_dataset(voc_dataset)
    evaluator = dataset_evaluator(data, "val")
    together = evaluate_anytime(None, snn, data, [2, 4], imgsz=64, batch=4, evaluator=evaluator)
    alone = evaluate_anytime(None, snn, data, [2], imgsz=64, batch=4, evaluator=evaluator)
    first, second = together["detections"][2], alone["detections"][2]
    assert first.keys() == second.keys() and sum(len(d.scores) for d in first.values()) > 0
    for key in first:
        np.testing.assert_allclose(first[key].boxes, second[key].boxes, atol=1e-3)
        np.testing.assert_allclose(first[key].scores, second[key].scores, atol=1e-5)
    assert together["snn"][2].map50_95 == alone["snn"][2].map50_95


def test_edge_datasets(weights, tmp_path, capsys):
    voc = make_voc(tmp_path / "edge", count=8, degenerate=False)
    # an empty test image (no objects) and a class ("bar") absent from the test split
    for i in range(6, 8):
        xml = voc / f"Annotations/img{i:03d}.xml"
        text = xml.read_text()
        start = text.index("<object>")
        xml.write_text(text[:start] + "</annotation>" if i == 6 else
                       text[:start] + "".join(o + "</object>" for o in text[start:].split("</object>") if
                                              "<name>square</name>" in o) + "</annotation>")
    rc = main(["val", "--weights", str(weights), "--data", str(voc), "--timesteps", "1,2", "--imgsz", "64",
               "--project", str(tmp_path / "runs")])
    assert rc == 0
    report = json.loads((tmp_path / "runs/exp/report.json").read_text())
    assert report["snn"]["2"]["voc"]["ap"]["bar"] is None  # absent class: no AP, not a crash
    (voc / "Annotations/img007.xml").write_text("<annotation><object><name>")
    rc = main(["val", "--weights", str(weights), "--data", str(voc), "--timesteps", "1", "--imgsz", "64",
               "--project", str(tmp_path / "runs")])
    assert rc == 2 and "img007.xml" in capsys.readouterr().err
    assert main(["val", "--weights", str(tmp_path / "missing.safetensors"), "--data", str(voc)]) == 2
    with pytest.raises(SystemExit):
        main(["val", "--weights", str(weights), "--data", str(voc), "--timesteps", "0,4"])


def test_classes_of_model_and_dataset_must_match(weights, voc_dataset, tmp_path, capsys, caplog):
    """A 2-class model on the 80-class COCO file: one clear line, exit 2, no run folder; other names: a warning."""
    from tests.conftest import SHARED

    coco = SHARED / "coco-tiny/annotations/instances_val2017.json"
    if coco.is_file():
        assert main(["val", "--weights", str(weights), "--data", str(coco), "--timesteps", "1",
                     "--project", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "detects 2 classes (bar, square) but" in err[0] and "has 80" in err[0], err
        assert not (tmp_path / "runs").exists()
    swapped = live_model_two_classes()
    swapped.names = {0: "square", 1: "bar"}  # the dataset's classes in another order: matched by name, not index
    assert check_classes(list(swapped.names.values()), prepare_dataset(voc_dataset), voc_dataset, "w") == [1, 0]
    renamed = live_model_two_classes()
    renamed.names = {0: "bar", 1: "circle"}
    other = save_detector(renamed, tmp_path / "renamed.safetensors", imgsz=64)
    assert main(["val", "--weights", str(other), "--data", str(voc_dataset), "--timesteps", "1", "--no-ann",
                 "--imgsz", "64", "--project", str(tmp_path / "runs")]) == 0
    assert "class names differ" in caplog.text and "'circle'" in caplog.text


def test_converted_snn_keeps_its_settings(weights, voc_dataset, tmp_path, capsys):
    """val of an SNN artifact with another --mode / --snm: one clear line, no run folder."""
    assert main(["convert", str(weights), "--mode", "channel", "--calib", str(voc_dataset), "--project",
                 str(tmp_path), "--name", "c"]) == 0
    snn = tmp_path / "c" / f"{weights.stem}-snn-channel.safetensors"
    capsys.readouterr()
    assert main(["val", "--weights", str(snn), "--data", str(voc_dataset), "--snm", "--mode", "qcfs",
                 "--project", str(tmp_path / "val")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "converted in channel mode with burst 1: for --mode qcfs --snm use" in err[0], err
    assert not (tmp_path / "val").exists()


def test_chunked_simulation_gives_the_same_report(weights, voc_dataset):
    from spikeyolo.eval.val import validate

    whole = validate(weights, voc_dataset, [1, 3], imgsz=64, batch=4, ann=False, chunk=None, device="auto")
    sliced = validate(weights, voc_dataset, [1, 3], imgsz=64, batch=4, ann=False, chunk=1)
    for t in ("1", "3"):
        for key in ("map50_95", "sops", "firing_rate"):
            assert sliced["snn"][t][key] == pytest.approx(whole["snn"][t][key], rel=1e-6)
    assert sliced["cost"]["neuron_state_bytes_per_image"] == whole["cost"]["neuron_state_bytes_per_image"]


def test_threshold_scale_trades_accuracy_for_operations(weights, voc_dataset, tmp_path, capsys):
    """Wu et al.'s trade-off: every θ halved fires more; one folder per scale, the ANN evaluated once."""
    assert main(["val", "--weights", str(weights), "--data", str(voc_dataset), "--timesteps", "1,2", "--imgsz", "64",
                 "--threshold-scale", "0.5,1", "--project", str(tmp_path)]) == 0
    reports = [json.loads((tmp_path / f"exp/threshold_x{scale}/report.json").read_text()) for scale in ("0.5", "1")]
    assert [r["threshold_scale"] for r in reports] == [0.5, 1.0] and reports[0]["ann"] and not reports[1]["ann"]
    assert reports[0]["snn"]["2"]["firing_rate"] > reports[1]["snn"]["2"]["firing_rate"]
    assert reports[0]["snn"]["2"]["sops"] > reports[1]["snn"]["2"]["sops"]
    assert (tmp_path / "exp/threshold_x0.5/report.json").is_file()
    assert (tmp_path / "exp/threshold_x1/map_vs_energy.png").is_file()
    assert "threshold trade-off" in capsys.readouterr().out
    assert main(["val", "--weights", str(weights), "--data", str(voc_dataset), "--threshold-scale", "0",
                 "--project", str(tmp_path)]) == 2
    assert "--threshold-scale must be in (0.0, 100.0]" in capsys.readouterr().err


def test_val_compiled_gives_the_eager_maps_without_cost(weights, voc_dataset, tmp_path, monkeypatch):
    """--compile: the SNN runs as compiled graphs (here a backend that runs the traced graph as is: the same ops),
    the mAP at every T equals the eager run's, and the report says it has no cost (the meter watches eager layers)."""
    import functools

    import torch

    from tests.engine.test_compile import CountingBackend

    backend = CountingBackend()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    args = ["val", "--weights", str(weights), "--data", str(voc_dataset), "--timesteps", "1,2", "--imgsz", "64",
            "--batch", "1", "--chunk", "1", "--no-ann", "--project", str(tmp_path)]
    assert main([*args, "--name", "eager"]) == 0
    assert main([*args, "--compile", "--name", "compiled"]) == 0
    eager, compiled = (json.loads((tmp_path / n / "report.json").read_text()) for n in ("eager", "compiled"))
    assert backend.graphs and compiled["compiled"] is True and "cost" not in compiled and "cost" in eager
    assert all(compiled["snn"][t]["map50_95"] == eager["snn"][t]["map50_95"] for t in ("1", "2"))


def test_threshold_scales_are_bounded(weights, voc_dataset, tmp_path, capsys):
    scales = ",".join(str(1 + i / 100) for i in range(17))
    assert main(["val", "--weights", str(weights), "--data", str(voc_dataset), "--threshold-scale", scales,
                 "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threshold-scale: at most 16 values (each is a full evaluation), got 17" in err[0]
    assert not any(tmp_path.iterdir())


def _rows(found, cls: int) -> np.ndarray:
    """One class's detections as rows (x1, y1, x2, y2, score)."""
    return np.concatenate([found.boxes, found.scores[:, None]], 1)[found.classes == cls]


def test_a_dataset_of_some_of_the_models_classes_is_matched_by_name(voc_dataset, tmp_path, capsys):
    """A 3-class model on the 2-class dataset (bar, square), names matched whatever their case and order: the same
    mAP as the 2-class model made of those two rows of its head; a class the model lacks is one line."""
    from spikeyolo.eval.val import validate
    from spikeyolo.quantize.swap import quantize_model
    from spikeyolo.ultra import build_detection_model
    from tests.conftest import ROOT
    from tests.convert.test_convert import live_model

    wide = live_model("yolov8n-relu", 4)
    wide.names = {0: "Circle", 1: "SQUARE", 2: "bar"}
    narrow = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=2, verbose=False)
    quantize_model(narrow, 4)
    rows = torch.tensor([2, 1])  # bar, square: the dataset's order
    state = {k: (v.index_select(0, rows) if ".cv3." in k and k.split(".")[-2] == "2" else v)
             for k, v in wide.state_dict().items()}
    narrow.load_state_dict(state)
    narrow.names = {0: "bar", 1: "square"}
    report = validate(save_detector(wide, tmp_path / "wide.safetensors", imgsz=64), voc_dataset, (1,), imgsz=64,
                      batch=4, device="cpu", cost=False)
    assert report["classes_matched"] == {"bar": 2, "square": 1}
    data = prepare_dataset(voc_dataset)
    runs = [evaluate_anytime(model, convert(model, "qcfs"), data, [1, 2], 64, 4, "cpu",
                             evaluator=dataset_evaluator(data, "val"), class_rows=class_rows)
            for model, class_rows in ((wide, [2, 1]), (narrow.eval(), None))]
    for key in ("ann", 1, 2):
        found, expected = runs[0]["detections"][key], runs[1]["detections"][key]
        assert found.keys() == expected.keys() and sum(len(d.scores) for d in found.values()) > 0
        for image, detections in found.items():  # per class, each detection matched to its nearest counterpart:
            for cls in (0, 1):                      # near-equal scores may come out in either order
                mine, theirs = (_rows(d, cls) for d in (detections, expected[image]))
                assert mine.shape == theirs.shape, (key, image, cls)
                if len(mine):
                    distance = np.abs(mine[:, None] - theirs[None]).max(-1)
                    assert distance.min(1).max() <= 1e-3 and distance.min(0).max() <= 1e-3, (key, image, cls)
    other = live_model("yolov8n-relu", 4)
    other.names = {0: "Circle", 1: "SQUARE", 2: "star"}
    lacking = save_detector(other, tmp_path / "lacking.safetensors", imgsz=64)
    capsys.readouterr()
    assert main(["val", "--weights", str(lacking), "--data", str(voc_dataset), "--project", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "of which bar are not among the model's" in err[0]


def test_a_split_without_images_is_one_line(weights, tmp_path, capsys):
    """An ultralytics yaml whose val folder is empty: one line naming the split, before any model runs."""
    import cv2
    import yaml

    for folder in ("train", "val"):
        (tmp_path / "set" / folder).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "set/train/a.jpg"), np.zeros((32, 32, 3), np.uint8))
    spec = tmp_path / "set/d.yaml"
    spec.write_text(yaml.safe_dump({"train": "train", "val": "val", "names": ["bar", "square"]}))
    assert main(["val", "--weights", str(weights), "--data", str(spec), "--project", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no images in split 'val'" in err[0], err
