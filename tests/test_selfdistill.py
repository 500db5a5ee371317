"""Self-distillation of a YOLOv5 anchor-head detector into its QCFS twin (spikeyolo.quantize.selfdistill)."""
import numpy as np
import pytest
import torch
from PIL import Image

from spikeyolo.checkpoint import read_metadata, read_tensors, write_safetensors
from spikeyolo.data.augment import MIXUP_BETA, augmented, augmented_batch, mixed, mosaic, placed
from spikeyolo.anchor_head import head_loss
from spikeyolo.quantize.selfdistill import PROGRESS_FORMAT, SelfDistillSettings, feature_loss, self_distill
from tests.conftest import ROOT, SHARED

YOLOV5N = SHARED.parent / "weights" / "yolov5n-v6.1-coco.pt"
needs_yolov5n = pytest.mark.skipif(not YOLOV5N.is_file(), reason="../shared/weights not present")


def photos(folder, count=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        size = (int(rng.integers(40, 120)), int(rng.integers(40, 120)), 3)
        Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(folder / f"p{i}.jpg")
    return folder


def test_a_student_that_gives_the_teachers_outputs_has_no_loss_but_the_entropy_floor():
    torch.manual_seed(0)
    teacher = [torch.randn(2, 3, 4, 4, 8), torch.randn(2, 3, 2, 2, 8)]
    same = head_loss(teacher, teacher)
    other = head_loss([t + 0.5 * torch.randn_like(t) for t in teacher], teacher)
    assert float(same["boxes"]) < 1e-12  # σ of a slice and a slice of σ may differ in the last bit
    assert all(float(other[k]) > float(same[k]) for k in ("objectness", "classes", "boxes"))
    features = {"model.2": torch.randn(2, 4, 8, 8)}
    assert float(feature_loss(features, features)) == 0.0
    assert float(feature_loss({"model.2": torch.zeros(2, 4, 8, 8)}, features)) == pytest.approx(1.0)


def test_augmented_photos_fill_the_canvas_and_repeat_with_the_seed():
    rng = np.random.default_rng(0)
    pictures = [np.full((50, 80, 3), v, np.uint8) for v in (10, 60, 200, 250)]
    canvas = mosaic(pictures, 64, rng)
    assert canvas.shape == (64, 64, 3) and set(np.unique(canvas)) <= {10, 60, 200, 250}  # four photos, no grey
    assert placed(pictures[0], 64, np.random.default_rng(1)).shape == (64, 64, 3)
    first = augmented_batch(pictures, 64, 3, np.random.default_rng(5))
    assert torch.equal(first, augmented_batch(pictures, 64, 3, np.random.default_rng(5)))
    assert first.shape == (3, 3, 64, 64) and 0 <= float(first.min()) and float(first.max()) <= 1


def test_mixup_blends_two_augmented_samples_and_leaves_the_rest_as_they_were():
    pictures = [np.random.default_rng(i).integers(0, 255, (50, 80, 3), dtype=np.uint8) for i in range(4)]
    rng = np.random.default_rng(3)  # what mixed() must draw, in its order
    first, _, weight = augmented(pictures, 64, rng).astype(np.float32), rng.random(), rng.beta(MIXUP_BETA, MIXUP_BETA)
    expected = weight * first + (1 - weight) * augmented(pictures, 64, rng).astype(np.float32)
    assert np.array_equal(mixed(pictures, 64, np.random.default_rng(3), mixup=1.0), expected)
    assert 0.3 < weight < 0.7 and not np.array_equal(expected, first)
    # without mixup the batch is what it was: the same draws, one augmented sample each
    rng = np.random.default_rng(5)
    plain = np.stack([augmented(pictures, 64, rng)[..., ::-1].transpose(2, 0, 1) for _ in range(3)])
    assert torch.equal(augmented_batch(pictures, 64, 3, np.random.default_rng(5)),
                       torch.from_numpy(np.ascontiguousarray(plain)).float() / 255.0)
    blended = augmented_batch(pictures, 64, 3, np.random.default_rng(5), mixup=1.0)
    assert blended.dtype == torch.float32 and 0 <= float(blended.min()) and float(blended.max()) <= 1


@needs_yolov5n
def test_an_interrupted_run_continues_to_the_same_student(tmp_path):
    """Two epochs in one go, and the same run stopped after its first epoch and started again: the same weights,
    bit for bit (the optimizer's moments, the step count and each epoch's augmentation are restored)."""
    folder = photos(tmp_path / "photos")
    settings = SelfDistillSettings(str(YOLOV5N), (str(folder),), levels=4, epochs=2, imgsz=64, batch=3)
    whole = self_distill(settings, tmp_path / "whole", log=lambda line: None)

    class Stop(Exception):
        pass

    def stop_after_first_epoch(line):
        if line.startswith("epoch 1/2"):
            raise Stop

    with pytest.raises(Stop):
        self_distill(settings, tmp_path / "parts", log=stop_after_first_epoch)
    assert read_metadata(tmp_path / "parts" / "weights" / "last.safetensors")["distillation"]["epochs"] == 1
    lines = []
    parts = self_distill(settings, tmp_path / "parts", log=lines.append)
    assert any("1 of 2 epochs done" in line for line in lines)
    a, b = read_tensors(whole), read_tensors(parts)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta = read_metadata(parts)
    assert meta["quantization"]["levels"] == 4 and len(meta["names"]) == 80 and meta["model_yaml"]["anchors"]
    assert meta["distillation"]["epochs"] == 2 and meta["distillation"]["photos"] == 6


@needs_yolov5n
def test_a_run_continues_only_with_its_own_settings_and_may_be_extended(tmp_path):
    from dataclasses import replace

    folder = photos(tmp_path / "photos")
    settings = SelfDistillSettings(str(YOLOV5N), (str(folder),), levels=4, epochs=1, imgsz=64, batch=3)
    self_distill(settings, tmp_path / "run", log=lambda line: None)
    with pytest.raises(ValueError, match="other settings"):
        self_distill(replace(settings, levels=8), tmp_path / "run", log=lambda line: None)
    lines = []
    longer = self_distill(replace(settings, epochs=2), tmp_path / "run", log=lines.append)
    assert any("1 of 2 epochs done" in line for line in lines) and sum(line.startswith("epoch") for line in lines) == 1
    assert read_metadata(longer)["distillation"]["epochs"] == 2
    with pytest.raises(ValueError, match="2 epochs already done, more than --epochs 1"):
        self_distill(settings, tmp_path / "run", log=lambda line: None)
    with pytest.raises(ValueError, match="other settings"):
        self_distill(replace(settings, epochs=2, mixup=0.5), tmp_path / "run", log=lambda line: None)
    # a progress file written before a setting existed continues with that setting at its default
    progress = tmp_path / "run" / "progress.safetensors"
    meta = read_metadata(progress, PROGRESS_FORMAT)
    del meta["settings"]["mixup"]
    write_safetensors(read_tensors(progress), progress, meta)
    lines = []
    self_distill(replace(settings, epochs=3), tmp_path / "run", log=lines.append)
    assert any("2 of 3 epochs done" in line for line in lines)
    assert read_metadata(progress, PROGRESS_FORMAT)["settings"]["mixup"] == 0.0


@needs_yolov5n
def test_a_run_may_start_from_an_earlier_student_and_keeps_its_record(tmp_path):
    """--init: the new run's student starts as the earlier one (its first step taken from those weights, not from
    the teacher), its metadata carries the earlier record and its L (a student of other levels starts from its λ);
    another model's weights are one ValueError."""
    from dataclasses import replace

    folder = photos(tmp_path / "photos")
    settings = SelfDistillSettings(str(YOLOV5N), (str(folder),), levels=4, epochs=1, imgsz=64, batch=3)
    first = self_distill(settings, tmp_path / "first", log=lambda line: None)
    zero_lr = replace(settings, init=str(first), lr=0.0)  # no step moves it: the student is the earlier one
    same = self_distill(zero_lr, tmp_path / "again", log=lambda line: None)
    a, b = read_tensors(first), read_tensors(same)
    assert all(torch.equal(a[k], b[k]) for k in a if not k.endswith(("running_mean", "running_var",
                                                                      "num_batches_tracked")))
    fresh = read_tensors(self_distill(replace(settings, lr=0.0), tmp_path / "fresh", log=lambda line: None))
    assert not all(torch.equal(a[k], fresh[k]) for k in a if k.endswith("threshold"))
    record = read_metadata(same)["distillation"]
    assert record["started_from"]["weights"] == "last.safetensors"
    assert record["started_from"]["distillation"]["epochs"] == 1 and record["lr"] == 0.0
    # a student of other levels starts from the earlier λ, re-quantized, and says which L it came from
    finer = self_distill(replace(zero_lr, levels=8), tmp_path / "finer", log=lambda line: None)
    c = read_tensors(finer)
    assert all(torch.equal(a[k], c[k]) for k in a if k.endswith("threshold"))
    assert read_metadata(finer)["quantization"]["levels"] == 8
    assert read_metadata(finer)["distillation"]["started_from"]["levels"] == 4
    assert read_metadata(same)["distillation"]["started_from"]["levels"] == 4
    bccd = ROOT / "weights" / "bccd-yolov8n-qcfs.safetensors"  # QCFS weights, but of a YOLOv8n
    with pytest.raises(ValueError, match="is not a student of this teacher"):
        self_distill(replace(settings, init=str(bccd)), tmp_path / "v8", log=lambda line: None)
    tensors, meta = read_tensors(first), read_metadata(first)
    tensors[next(k for k in tensors if k.endswith("threshold"))].zero_()
    write_safetensors(tensors, tmp_path / "zero.safetensors", meta)
    with pytest.raises(ValueError, match="is 0"):  # read by the checkpoint loader, with its checks
        self_distill(replace(settings, init=str(tmp_path / "zero.safetensors")), tmp_path / "z", log=lambda line: None)
    # extended later, the run keeps where it started from its progress file: the earlier weights are not read again
    (tmp_path / "first" / "weights" / "last.safetensors").rename(tmp_path / "moved.safetensors")
    longer = self_distill(replace(zero_lr, epochs=2), tmp_path / "again", log=lambda line: None)
    assert read_metadata(longer)["distillation"]["started_from"]["distillation"]["epochs"] == 1


@needs_yolov5n
def test_distilling_brings_the_student_closer_to_its_teacher(tmp_path):
    from spikeyolo.data.augment import read_photos
    from spikeyolo.quantize.selfdistill import SelfDistiller, load_teacher, make_student

    folder = photos(tmp_path / "photos", count=4)
    images = augmented_batch(read_photos(sorted(folder.iterdir()), 64), 64, 4, np.random.default_rng(0))
    teacher = load_teacher(YOLOV5N)
    student = make_student(teacher, 4, images, 99.0)
    settings = SelfDistillSettings(str(YOLOV5N), (str(folder),), levels=4, imgsz=64, batch=4, lr=1e-3)
    distiller = SelfDistiller(teacher, student, settings, total_steps=40)
    with torch.no_grad():
        before = float(distiller.losses(images)["loss"])
    for _ in range(12):
        distiller.step(images)
    with torch.no_grad():
        after = float(distiller.losses(images)["loss"])
    assert after < 0.8 * before, (before, after)


def test_distill_command_refuses_what_it_cannot_teach_from(tmp_path, capsys):
    from spikeyolo.cli import main

    folder = photos(tmp_path / "photos")
    for argv, message in (([str(tmp_path / "none.pt"), "--photos", str(folder)], "pass a YOLOv5 v6.x .pt"),
                          ([str(YOLOV5N), "--photos", str(tmp_path / "nowhere")], "--photos"),
                          ([str(YOLOV5N), "--photos", str(folder), "--levels", "0"], "--levels"),
                          ([str(YOLOV5N), "--photos", str(folder), "--mixup", "1.5"], "--mixup"),
                          ([str(YOLOV5N), "--photos", str(folder), "--init", str(tmp_path / "no.safetensors")],
                           "--init")):
        if not YOLOV5N.is_file() and "none.pt" not in argv[0]:
            continue
        assert main(["distill", *argv, "--project", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())

