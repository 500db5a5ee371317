"""Training end to end on a small slice of real data (BCCD), with the network cut off: the loss falls, nothing connects."""
import csv
import socket

import numpy as np
import pytest

from spikeyolo.quantize.checkpoint import load_detector
from spikeyolo.data import prepare_dataset
from spikeyolo.quantize import QCFS
from spikeyolo.quantize.qcfs import DEFAULT_THRESHOLD
from spikeyolo.quantize.trainer import train
from spikeyolo.ultra import DetectionPredictor, DetectionValidator, conv_blocks, get_cfg
from tests.conftest import ROOT


class NetworkGuard:
    """Replaces the socket layer's ways out; every attempt is recorded and refused."""

    def __init__(self, monkeypatch):
        self.attempts = []
        for name in ("getaddrinfo", "create_connection", "gethostbyname"):
            monkeypatch.setattr(socket, name, self._refuse(name))
        monkeypatch.setattr(socket.socket, "connect", self._refuse("connect"))
        monkeypatch.setattr(socket.socket, "connect_ex", self._refuse("connect_ex"))

    def _refuse(self, name):
        def refuse(*args, **kwargs):
            self.attempts.append((name, args[-1] if args else kwargs))
            raise OSError(f"network disabled by test ({name})")
        return refuse


@pytest.fixture(scope="module")
def trained(bccd_small, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    guard = NetworkGuard(mp)
    project = tmp_path_factory.mktemp("runs")
    # Augmentation and warm-up off so that epoch losses are comparable.
    steady = dict(mosaic=0.0, fliplr=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0,
                  warmup_epochs=0.0, optimizer="AdamW", lr0=0.005)
    try:
        result = train(bccd_small, ROOT / "configs/models/yolov8n-relu.yaml", levels=4, epochs=8, imgsz=160,
                       batch=4, project=str(project), name="t", val=False, **steady)
    finally:
        mp.undo()
    return result.run_dir, guard.attempts


def test_training_lowers_the_loss(trained):
    run, _ = trained
    with open(run / "results.csv") as f:
        rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    loss = [r["train/box_loss"] + r["train/cls_loss"] + r["train/dfl_loss"] for r in rows]
    assert len(loss) == 8 and loss[-1] < 0.95 * loss[0], loss


def test_checkpoint_carries_qcfs_state(trained):
    run, _ = trained
    model, meta = load_detector(run / "weights/best.safetensors")
    assert meta["names"] == ["Platelets", "RBC", "WBC"] and meta["quantization"]["levels"] == 4
    acts = [b.act for _, b in conv_blocks(model)]
    assert all(isinstance(a, QCFS) for a in acts)
    thresholds = [a.threshold.item() for a in acts]
    assert len(set(thresholds)) > 1  # per layer
    moved = [abs(t - DEFAULT_THRESHOLD) > 1e-3 for t in thresholds]  # λ learned: it left its initial value
    assert sum(moved) >= 0.9 * len(moved), thresholds  # (8 epochs on 16 images: a layer or two may not move yet)


def test_train_val_predict_make_no_connection(trained, bccd_small, monkeypatch):
    run, train_attempts = trained
    assert train_attempts == []
    guard = NetworkGuard(monkeypatch)
    model, _ = load_detector(run / "weights/best.safetensors")
    metrics = validate_ann(model, prepare_dataset(bccd_small), imgsz=160, batch=4)
    assert 0.0 <= metrics["metrics/mAP50(B)"] <= 1.0
    image = np.zeros((96, 96, 3), dtype=np.uint8)
    results = predict_ann(model, image, imgsz=160)
    assert len(results) == 1
    assert guard.attempts == []


def test_cli_from_user_silu_checkpoint(voc_dataset, tmp_path):
    """A user's SiLU ultralytics .pt is fine-tuned with QCFS; λ starts from its activations."""
    from spikeyolo.cli import main

    common = ["--data", str(voc_dataset), "--epochs", "1", "--imgsz", "64", "--batch", "4", "--project", str(tmp_path)]
    assert main(["train", "--model", "yolov8n", "--levels", "0", "--name", "silu", *common]) == 0
    silu, meta = load_detector(tmp_path / "silu/weights/best.safetensors")
    assert meta["quantization"]["levels"] is None
    assert all(type(b.act).__name__ == "SiLU" for _, b in conv_blocks(silu))
    assert main(["train", "--from", str(tmp_path / "silu/weights/last.pt"), "--levels", "4", "--name", "q",
                 *common, "warmup_epochs=0", "close_mosaic=0"]) == 0
    args = (tmp_path / "q/args.yaml").read_text()
    assert "warmup_epochs: 0" in args and "close_mosaic: 0" in args  # ultralytics settings pass through
    model, meta = load_detector(tmp_path / "q/weights/best.safetensors")
    assert meta["quantization"]["levels"] == 4
    thresholds = [b.act.threshold.item() for _, b in conv_blocks(model)]
    assert len(set(round(t, 3) for t in thresholds)) > 10  # calibrated per layer, not the constant 3.0


def test_import_user_checkpoint_round_trip(trained, tmp_path):
    """spikeyolo import unpickles the named .pt once and writes safetensors giving identical outputs."""
    import torch

    from spikeyolo.cli import main
    from spikeyolo.ultra import load_checkpoint

    run, _ = trained
    assert main(["import", str(run / "weights/last.pt"), "--project", str(tmp_path), "--name", "i", "--imgsz",
                 "160"]) == 0
    out = tmp_path / "i" / "last.safetensors"
    assert not (run / "weights/last.safetensors").exists()  # nothing beside the input
    original, _ = load_checkpoint(run / "weights/last.pt")
    imported, meta = load_detector(out)
    assert meta["imgsz"] == 160 and meta["imported_from"].endswith("last.pt")
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        assert torch.allclose(original.eval()(x)[0], imported(x)[0], atol=1e-5)
    assert main(["import", str(tmp_path / "missing.pt")]) == 2
    # other classes: the class outputs initialized, the rest carried
    assert main(["import", str(run / "weights/last.pt"), "--project", str(tmp_path), "--name", "i",
                 "--names", "cat,dog"]) == 0
    renamed = tmp_path / "i2" / "last.safetensors"  # a new run folder: the first import is not overwritten
    model, meta = load_detector(renamed)
    assert meta["names"] == ["cat", "dog"] and model(x)[0].shape[1] == 4 + 2  # the fixture has 3 classes
    assert 0 < meta["initialized_tensors"] < meta["carried_tensors"]
    assert torch.equal(model.model[0].conv.weight, imported.model[0].conv.weight)
    assert main(["import", str(run / "weights/last.pt"), "--names", "a,,b"]) == 2


def test_thresholds_have_their_own_optimizer_group():
    from spikeyolo.quantize.swap import quantize_model
    from spikeyolo.quantize.trainer import THRESHOLD_LR_SCALE, QCFSTrainer
    from spikeyolo.ultra import build_detection_model

    model = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=3, verbose=False)
    quantize_model(model, 4, 3.0)
    trainer = object.__new__(QCFSTrainer.configured())
    trainer.threshold_lr_scale = THRESHOLD_LR_SCALE
    optimizer = trainer.build_optimizer(model, "AdamW", lr=0.002, decay=0.0005)
    groups = {g["param_group"]: g for g in optimizer.param_groups}
    thresholds = {id(m.threshold) for m in model.modules() if isinstance(m, QCFS)}
    assert {id(p) for p in groups["threshold"]["params"]} == thresholds
    assert groups["threshold"]["weight_decay"] == 0.0 and groups["threshold"]["lr"] == 0.002 * THRESHOLD_LR_SCALE
    others = [id(p) for g in optimizer.param_groups if g["param_group"] != "threshold" for p in g["params"]]
    assert not thresholds & set(others) and len(others) + len(thresholds) == len(list(model.parameters()))



def test_train_settings_are_checked(voc_dataset, capsys):
    from spikeyolo.cli import main
    from spikeyolo.quantize.trainer import train_settings

    assert train_settings(["lr0=5e-4", "optimizer=AdamW", "cos_lr=true", "warmup_epochs=0"]) == {
        "lr0": 5e-4, "optimizer": "AdamW", "cos_lr": True, "warmup_epochs": 0}
    for bad, message in (("lr_zero=1", "not an ultralytics train setting"), ("epochs=3", "use --epochs"),
                         ("warmup", "not KEY=VALUE")):
        assert main(["train", "--data", str(voc_dataset), bad]) == 2
        assert message in capsys.readouterr().err


def test_from_spikeyolo_safetensors_carries_every_tensor(voc_dataset, tmp_path, caplog):
    """--from a spikeyolo .safetensors (e.g. what 'spikeyolo import' wrote): trained from it, nothing unpickled."""
    import logging

    from spikeyolo.quantize.checkpoint import save_detector
    from spikeyolo.cli import main
    from spikeyolo.ultra import build_detection_model

    source = build_detection_model(ROOT / "configs/models/yolov5n-relu.yaml", nc=2)
    source.names = {0: "bar", 1: "square"}
    weights = save_detector(source, tmp_path / "v5.safetensors", imgsz=64)
    common = ["--data", str(voc_dataset), "--epochs", "1", "--imgsz", "64", "--batch", "4", "--project", str(tmp_path)]
    with caplog.at_level(logging.INFO, logger="spikeyolo.train"):
        assert main(["train", "--from", str(weights), "--levels", "4", "--name", "v5", *common]) == 0
    carried = next(r.message for r in caplog.records if "tensors carried" in r.message)
    total = len(source.state_dict())
    assert f"{total} of " in carried  # every tensor of the source (the QCFS λ are the new ones)
    model, meta = load_detector(tmp_path / "v5/weights/best.safetensors")
    assert meta["quantization"]["levels"] == 4 and type(model.model[9].cv1.act).__name__ == "QCFS"


def validate_ann(model, data, imgsz: int = 640, batch: int = 16, device: str = "cpu", split: str = "val") -> dict:
    """ultralytics' detection validation of an in-memory model (its metrics dict)."""
    args = get_cfg(overrides={"task": "detect", "mode": "val", "data": str(data), "imgsz": imgsz, "batch": batch,
                              "device": device, "split": split, "plots": False, "verbose": False})
    return DetectionValidator(args=args)(model=model)


def predict_ann(model, source, imgsz: int = 640, conf: float = 0.25, device: str = "cpu"):
    """ultralytics' detection prediction with an in-memory model (its Results list)."""
    predictor = DetectionPredictor(overrides={"imgsz": imgsz, "conf": conf, "device": device, "save": False,
                                              "verbose": False})
    return predictor(source=source, model=model)


def test_own_checkpoints_are_signed_and_resuming_a_finished_run_is_one_line(trained, bccd_small, capsys):
    """Every checkpoint the run wrote verifies (so it can be resumed); resuming the finished run: one line, exit 2."""
    from spikeyolo.cli import main
    from spikeyolo.quantize.signature import check_signed

    run, _ = trained
    for checkpoint in (run / "weights").glob("*.pt"):
        check_signed(checkpoint)
    assert main(["train", "--data", str(bccd_small), "--resume", str(run / "weights/last.pt"), "--imgsz", "160",
                 "--project", str(run.parent / "again")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to resume" in err[0] and "--from" in err[0], err
