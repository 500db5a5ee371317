"""spikeyolo train --teacher: the labels' loss plus distillation from another detector (spikeyolo.quantize.teacher)."""
import copy
import csv

import torch

from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.quantize.teacher import DistilledLoss, feature_imitation
from spikeyolo.ultra import DEFAULT_CFG, build_detection_model, get_cfg
from tests.conftest import ROOT


def _model(seed: int = 0):
    torch.manual_seed(seed)
    model = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=2)
    model.args = get_cfg(DEFAULT_CFG)
    return model.eval()


def _other(model, seed: int = 5):
    """The same network with every parameter moved a little: its outputs differ."""
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return other


def _batch(seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.5, 0.3, 0.1], [0.5, 0.5, 0.4, 0.4]])
    return {"img": torch.rand(2, 3, 64, 64, generator=generator), "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
            "cls": torch.tensor([[0.0], [1.0], [0.0]]), "bboxes": boxes}


def _student_outputs(model, images):
    preds = model(images)
    raw = preds[1]
    for key in ("boxes", "scores"):
        raw[key].retain_grad()
    return preds, raw


def test_the_labels_loss_is_kept_and_one_term_added():
    model, batch = _model(), _batch()
    teacher = _other(model)
    criterion = model.init_criterion()
    preds, _ = _student_outputs(model, batch["img"])
    loss, items = DistilledLoss(criterion, teacher, gain=2.0)(preds, batch)
    plain, plain_items = criterion(preds, batch)
    assert loss.shape == (4,) and torch.equal(loss[:3], plain)  # same inputs, same ops: exactly the same
    assert set(items) == set(plain_items) | {"kd_loss"} and items["kd_loss"] > 0
    assert torch.allclose(loss[3], 2.0 * items["kd_loss"] * 2)  # gain × distillation × batch size


def test_the_distillation_term_is_stationary_at_the_teacher_and_pulls_towards_it():
    batch = _batch()
    model = _model()
    for teacher, stationary in ((copy.deepcopy(model), True), (_other(model), False)):
        preds, raw = _student_outputs(model, batch["img"])
        loss, _ = DistilledLoss(model.init_criterion(), teacher, gain=1.0)(preds, batch)
        loss[3].backward()
        gradient = torch.cat([raw["boxes"].grad.flatten(), raw["scores"].grad.flatten()])
        if stationary:
            assert gradient.abs().max() < 1e-6
        else:
            assert gradient.abs().max() > 1e-4
            with torch.no_grad():  # a small step against the gradient lowers the term
                stepped = {k: (raw[k] - 0.1 * raw[k].grad / gradient.norm()).detach() for k in ("boxes", "scores")}
            from spikeyolo.tune.distill import distillation_loss
            target = teacher(batch["img"])[1]
            before = distillation_loss({k: raw[k].detach() for k in stepped}, target, 16, "objects")
            assert distillation_loss(stepped, target, 16, "objects") < before


def test_feature_imitation_counts_where_the_teacher_sees_objects():
    generator = torch.Generator().manual_seed(0)
    teacher = [torch.rand(1, 4, 2, 2, generator=generator), torch.rand(1, 4, 1, 1, generator=generator)]
    confidence = [torch.tensor([[1.0, 0.0, 0.5, 0.0]]), torch.tensor([[1.0]])]
    assert feature_imitation([t.clone() for t in teacher], teacher, confidence) == 0
    student = [t.clone() for t in teacher]
    student[0][0, :, 0, 1] += 5.0  # where the teacher's confidence is 0: no cost
    assert feature_imitation(student, teacher, confidence) == 0
    student[0][0, :, 1, 0] += 1.0  # place 2 (confidence 0.5): squared error 1 per channel
    expected = (0.5 * 1.0 / (1.5 * (teacher[0] ** 2).mean())) / 2  # mean over the two levels
    assert torch.allclose(feature_imitation(student, teacher, confidence), expected)


def test_cli_trains_with_a_teacher_and_refuses_a_wrong_one(voc_dataset, tmp_path, capsys):
    from spikeyolo.checkpoint import read_metadata
    from spikeyolo.cli import main

    common = ["--data", str(voc_dataset), "--epochs", "1", "--imgsz", "64", "--batch", "4", "--project", str(tmp_path)]
    assert main(["train", "--model", "yolov8n", "--levels", "0", "--name", "silu", *common]) == 0
    teacher = str(tmp_path / "silu/weights/best.safetensors")
    assert main(["train", "--from", teacher, "--teacher", teacher, "--teacher-features", "0.5", "--levels", "4",
                 "--name", "q", *common]) == 0
    with open(tmp_path / "q/results.csv") as f:
        row = {k.strip(): float(v) for k, v in next(csv.DictReader(f)).items()}
    assert row["train/kd_loss"] > 0 and "val/kd_loss" in row
    meta = read_metadata(tmp_path / "q/weights/best.safetensors")
    assert meta["teacher"] == {"path": "best.safetensors", "gain": 1.0, "feature_weight": 0.5}
    assert meta["quantization"]["levels"] == 4 and meta["fine_tuned_from"] == "best.safetensors"

    other = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=2)
    other.names = {0: "cat", 1: "dog"}
    cats = save_detector(other, tmp_path / "cats.safetensors", imgsz=64)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    capsys.readouterr()
    refusals = ((["--teacher", str(tmp_path / "silu/weights/last.pt")], "must be a YOLOv5 v6.x checkpoint"),
                (["--teacher", str(broken)], "broken.safetensors"),
                (["--teacher-gain", "2"], "need --teacher"),
                (["--teacher", teacher, "--teacher-gain", "0"], "--teacher-gain"),
                (["--teacher", str(cats)], "detects ['cat', 'dog']"))  # classes: known once the data is read
    for index, (argv, message) in enumerate(refusals):
        assert main(["train", "--model", "yolov8n-relu", "--name", "bad", *common, *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert index == 4 or not (tmp_path / "bad").exists()  # refused before the run folder was made
    assert not (tmp_path / "bad/weights/best.safetensors").exists()
