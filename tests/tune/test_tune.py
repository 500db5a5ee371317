"""spikeyolo tune on a tiny converted yolov8n: calibration lowers the ANN–SNN error, gradients reach every layer, the
tuned artifact reloads and runs identically, an interrupted run continues to the same result."""
import pytest
import torch

from spikeyolo.checkpoint import CheckpointError, read_metadata
from spikeyolo.cli import main
from spikeyolo.convert import convert
from spikeyolo.convert.artifact import load_snn
from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.tune import distill, run
from spikeyolo.tune.calibrate import LayerOutputs, calibration_targets, correct_biases
from spikeyolo.tune.distill import Distiller, spiking_head
from spikeyolo.tune.run import TuneSettings, resume_path, tune
from spikeyolo.ultra import LabelsLoss, raw_head_outputs
from tests.convert.test_convert import live_model

pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def qcfs_model():
    return live_model("yolov8n-relu", 4)


@pytest.fixture(scope="module")
def qcfs_weights(qcfs_model, tmp_path_factory):
    return save_detector(qcfs_model, tmp_path_factory.mktemp("w") / "m.safetensors", imgsz=64)


def _images(n, seed):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _head_error(snn, ann, images, timesteps, squared=True):
    """Mean squared error between the ANN's raw head outputs and the SNN's after T steps, or (``squared`` False) the
    mean absolute error of their means per output channel (what bias correction corrects)."""
    with torch.no_grad():
        teacher = raw_head_outputs(ann(images))
        student = spiking_head(snn, images, timesteps)
    if squared:
        return sum(float(((student[k] - teacher[k]) ** 2).mean()) for k in teacher)
    return sum(float((student[k] - teacher[k]).mean((0, 2)).abs().mean()) for k in teacher)


def test_bias_correction_lowers_the_ann_snn_error_at_t2(qcfs_model):
    snn = convert(qcfs_model, "qcfs", burst=1)
    calibration, held_out = [_images(4, 1), _images(4, 2)], _images(4, 3)
    before = _head_error(snn, qcfs_model, held_out, 2), _head_error(snn, qcfs_model, torch.cat(calibration), 2, False)
    errors = correct_biases(snn, qcfs_model, calibration, 2)
    assert list(errors) == calibration_targets(snn)  # every neuron and accumulator, in the order they run
    after = _head_error(snn, qcfs_model, held_out, 2), _head_error(snn, qcfs_model, torch.cat(calibration), 2, False)
    assert after[0] < 0.95 * before[0], (before, after)  # held-out images: the squared error drops (1.44 → 1.28)
    assert after[1] < 0.1 * before[1], (before, after)  # calibration images: the channels' mean errors vanish


def _head(seed, anchors=6, classes=2, bins=4):
    generator = torch.Generator().manual_seed(seed)
    return {"scores": torch.randn(1, classes, anchors, generator=generator, dtype=torch.float64) * 3,
            "boxes": torch.randn(1, 4 * bins, anchors, generator=generator, dtype=torch.float64)}


@pytest.mark.parametrize("balance", distill.LOSSES)
def test_distillation_loss_is_smallest_at_the_teacher(balance):
    teacher = _head(1)
    student = {k: v.clone().requires_grad_() for k, v in teacher.items()}
    distill.distillation_loss(student, teacher, 4, balance).backward()
    assert all(float(v.grad.abs().max()) < 1e-12 for v in student.values())
    assert distill.distillation_loss(_head(2), teacher, 4, balance) > distill.distillation_loss(teacher, teacher, 4,
                                                                                                balance)


def test_objects_balance_counts_per_unit_of_teacher_confidence():
    """By hand: "objects" = Σ BCE / Σ w + 3 Σ w·KL / Σ w (w = the teacher's top class probability per anchor);
    background anchors (teacher and student both sure there is nothing) barely change it, unlike "anchors"."""
    import torch.nn.functional as F

    student, teacher = _head(3), _head(4)
    probs = teacher["scores"].sigmoid()
    weight = probs.amax(1)
    kl = sum((F.softmax(t, 0) * (F.log_softmax(t, 0) - F.log_softmax(s, 0))).sum(0)
             for s, t in zip(student["boxes"][0].view(4, 4, 6), teacher["boxes"][0].view(4, 4, 6))) / 4
    by_hand = (F.binary_cross_entropy_with_logits(student["scores"], probs, reduction="sum")
               + 3 * (weight[0] * kl).sum()) / weight.sum()
    assert float(distill.distillation_loss(student, teacher, 4, "objects")) == pytest.approx(float(by_hand), rel=1e-12)
    padded = [{"scores": torch.cat([h["scores"], torch.full((1, 2, 600), -20.0, dtype=torch.float64)], 2),
               "boxes": torch.cat([h["boxes"], torch.zeros(1, 16, 600, dtype=torch.float64)], 2)}
              for h in (student, teacher)]
    change = {}
    for balance in distill.LOSSES:
        before = float(distill.distillation_loss(student, teacher, 4, balance))
        change[balance] = abs(float(distill.distillation_loss(*padded, 4, balance)) - before) / before
    assert change["objects"] < 1e-4 and change["anchors"] > 0.05, change


def test_gradients_reach_every_convolution(qcfs_model):
    snn = convert(qcfs_model, "qcfs", burst=1)
    distiller = Distiller(snn, qcfs_model, 2, 1e-3, 10)
    distiller.train_mode(True)
    loss = distill.distillation_loss(spiking_head(snn, _images(2, 4), 2), raw_head_outputs(qcfs_model(_images(2, 4))),
                                     16)
    loss.backward()
    convs = [(name, m) for name, m in snn.net.named_modules() if isinstance(m, torch.nn.Conv2d) and ".dfl." not in name]
    dead = [name for name, m in convs if m.weight.grad is None or not m.weight.grad.abs().sum() > 0]
    assert not dead, dead
    distiller.train_mode(False)
    assert all(neuron.surrogate is None for _, neuron in snn.neurons())
    assert not any(p.requires_grad for p in snn.net.parameters())
    assert len(distiller.parameters) == len(list(snn.net.parameters())) - 1  # all but the DFL's fixed bins


def test_trained_thresholds_start_as_the_same_network_and_learn_per_channel(qcfs_model):
    """θ copied to one per channel is the same network (bit-equal outputs); θ then gets gradients, moves by about
    THRESHOLD_LR·lr of itself per step, never below its floor, and the loss drops."""
    torch.manual_seed(0)
    snn, images = convert(qcfs_model, "qcfs", burst=1), _images(2, 5)
    with torch.no_grad():
        before = spiking_head(snn, images, 2)
    distiller = Distiller(snn, qcfs_model, 2, 1e-3, 30, thresholds=True)
    with torch.no_grad():
        after = spiking_head(snn, images, 2)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(neuron.threshold.dim() == 1 and neuron.threshold.numel() > 1 for _, neuron in snn.neurons())
    initial = [theta.detach().clone() for theta in distiller.thresholds]
    distiller.train_mode(True)
    losses = [distiller.step(images) for _ in range(8)]
    assert losses[-1] < 0.8 * losses[0], losses
    moved = [float(((theta.detach() - theta0).abs() / theta0).max()) for theta, theta0 in zip(distiller.thresholds,
                                                                                                   initial)]
    assert min(moved) > 0 and max(moved) <= 8 * distill.THRESHOLD_LR * 1e-3 * 1.5, moved
    assert all(bool((theta >= distill.MIN_THRESHOLD * theta0).all()) for theta, theta0 in zip(distiller.thresholds,
                                                                                               initial))
    distiller.train_mode(False)
    assert not any(neuron.threshold.requires_grad for _, neuron in snn.neurons())


def test_trained_thresholds_stay_above_their_floor(qcfs_model, monkeypatch):
    monkeypatch.setattr(distill, "MIN_THRESHOLD", 0.999)  # a floor that binds at once
    monkeypatch.setattr(distill, "THRESHOLD_LR", 1000.0)
    snn = convert(qcfs_model, "qcfs", burst=1)
    distiller = Distiller(snn, qcfs_model, 2, 1e-3, 30, thresholds=True)
    initial = [theta.detach().clone() for theta in distiller.thresholds]
    distiller.train_mode(True)
    for _ in range(2):
        distiller.step(_images(2, 5))
    assert all(bool((theta >= 0.999 * theta0).all()) for theta, theta0 in zip(distiller.thresholds, initial))
    assert any(bool((theta > theta0).any()) for theta, theta0 in zip(distiller.thresholds, initial))


def test_readouts_distill_the_head_after_each_step_named(qcfs_model):
    """``readouts`` (1, 2): the loss is the mean of the losses of the head read after step 1 and after step 2, each
    the same as a run of that many steps."""
    snn, images = convert(qcfs_model, "qcfs", burst=1), _images(2, 8)
    with torch.no_grad():
        teacher = raw_head_outputs(qcfs_model(images))
        heads = spiking_head(snn, images, 2, (1, 2))
        alone = [spiking_head(snn, images, steps) for steps in (1, 2)]
    assert all(torch.equal(head[k], single[k]) for head, single in zip(heads, alone) for k in teacher)
    losses = [float(distill.distillation_loss(head, teacher, 16)) for head in heads]
    assert losses[0] != losses[1]
    distiller = Distiller(snn, qcfs_model, 2, 0.0, 1, readouts=(1, 2))
    distiller.train_mode(True)
    assert distiller.step(images) == pytest.approx(sum(losses) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="readout"):
        Distiller(snn, qcfs_model, 2, 1e-3, 1, readouts=(3,))


def test_distillation_lowers_its_loss(qcfs_model):
    torch.manual_seed(0)
    snn = convert(qcfs_model, "qcfs", burst=1)
    distiller = Distiller(snn, qcfs_model, 2, 3e-3, 30)
    distiller.train_mode(True)
    images = _images(2, 5)
    losses = [distiller.step(images) for _ in range(10)]
    assert losses[-1] < 0.8 * losses[0], losses


def test_labels_join_the_teacher_with_their_gain(qcfs_model, monkeypatch):
    snn = convert(qcfs_model, "qcfs", burst=1)
    images = _images(2, 7)
    targets = {"batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.tensor([2.0, 0.0]),
               "bboxes": torch.tensor([[0.4, 0.5, 0.3, 0.3], [0.6, 0.4, 0.2, 0.5]])}
    with torch.no_grad():
        teacher, head = raw_head_outputs(qcfs_model(images)), spiking_head(snn, images, 2)
        labels = LabelsLoss(qcfs_model)(head, targets, 64)
        kd = distill.distillation_loss(head, teacher, 16)
    distiller = Distiller(snn, qcfs_model, 2, 0.0, 1, label_gain=0.5)
    distiller.train_mode(True)
    assert distiller.step(images, targets) == pytest.approx(float(kd + 0.5 * labels), rel=1e-5)
    with pytest.raises(ValueError, match="labels"):
        distiller.step(images)
    monkeypatch.setattr(distill, "distillation_loss", lambda *args: torch.zeros(()))  # the labels alone
    distiller.head_loss(spiking_head(snn, images, 2), teacher, targets, 64).backward()
    convs = [(name, m) for name, m in snn.net.named_modules() if isinstance(m, torch.nn.Conv2d) and ".dfl." not in name]
    assert not [name for name, m in convs if m.weight.grad is None or not m.weight.grad.abs().sum() > 0]


def _settings(weights, data, **changes):
    base = dict(weights=str(weights), data=str(data), timesteps=2, epochs=2, lr=1e-3, batch=4, images=8,
                calib_images=4, imgsz=64)
    return TuneSettings(**{**base, **changes})


@pytest.mark.parametrize("thresholds, label_gain", [(False, 0.0), (True, 0.0), (False, 0.5)])
def test_tuned_artifact_reloads_and_runs_identically(qcfs_weights, voc_dataset, tmp_path, thresholds, label_gain,
                                                      monkeypatch):
    out = tmp_path / "tuned.safetensors"
    if not label_gain:  # without a label gain no label is read
        monkeypatch.setattr(run, "labelled_batches", lambda *args: pytest.fail("labels read with label_gain 0"))
    record, snn = tune(_settings(qcfs_weights, voc_dataset, epochs=1, thresholds=thresholds, label_gain=label_gain),
                       out)
    assert ("labels' detection loss" in record["method"]) == (label_gain > 0)
    images = _images(2, 6)
    loaded = load_snn(out)
    assert torch.equal(loaded(images, 3), snn(images, 3))
    meta = read_metadata(out, ("spikeyolo-snn/3",))
    assert meta["tuning"]["timesteps"] == 2 and meta["tuning"]["epochs"] == 1 and meta["tuning"] == record
    assert meta["burst"] == 1 and not resume_path(out).exists()
    assert all(spec["per_channel"] == thresholds for spec in meta["graph"]["neurons"].values())


def _interrupt_in_second_epoch(settings, out, monkeypatch):
    """Run tune with Ctrl-C at the third optimizer step (2 steps per epoch): the resume file holds epoch 1. Returns
    the real Distiller.step, put back."""
    real_step, calls = Distiller.step, []

    def cut(self, images, targets=None):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(self, images, targets)

    monkeypatch.setattr(Distiller, "step", cut)
    with pytest.raises(KeyboardInterrupt):
        tune(settings, out)
    monkeypatch.setattr(Distiller, "step", real_step)
    return real_step


@pytest.mark.parametrize("thresholds", [False, True])
def test_an_interrupted_run_continues_to_the_same_result(qcfs_weights, voc_dataset, tmp_path, monkeypatch, thresholds):
    settings = _settings(qcfs_weights, voc_dataset, calibrate=False, thresholds=thresholds)  # calibration: below
    _, whole = tune(settings, tmp_path / "whole.safetensors")
    out = tmp_path / "cut.safetensors"
    real_step = _interrupt_in_second_epoch(settings, out, monkeypatch)
    assert resume_path(out).is_file() and not out.exists()
    with pytest.raises(ValueError, match="other settings"):
        tune(_settings(qcfs_weights, voc_dataset, lr=2e-3, calibrate=False, thresholds=thresholds), out)
    steps = []
    monkeypatch.setattr(Distiller, "step", lambda self, images, targets=None: steps.append(1) or real_step(self, images, targets))
    record, resumed = tune(settings, out)
    assert len(steps) == 2  # the second epoch only
    assert len(record["losses"]) == 2
    for (name, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name


def test_tune_command_and_its_one_line_errors(qcfs_weights, voc_dataset, tmp_path, capsys):
    project = tmp_path / "runs"
    args = ["tune", str(qcfs_weights), "--data", str(voc_dataset), "--timesteps", "2", "--epochs", "0",
            "--calib-images", "2", "--imgsz", "64", "--project", str(project)]
    assert main(args) == 0
    out = project / "exp" / f"{qcfs_weights.stem}-snn-tuned-T2.safetensors"
    assert out.is_file()
    assert "bias correction" in capsys.readouterr().out
    assert main(["tune", str(out), "--data", str(voc_dataset), "--project", str(project)]) == 2
    assert "converted SNN" in capsys.readouterr().err
    assert main(args + ["--lr", "-1"]) == 2
    assert "--lr" in capsys.readouterr().err
    assert main(args + ["--readouts", "1,3"]) == 2
    assert "readout steps [1, 3]" in capsys.readouterr().err
    plain = save_detector(live_model("yolov8n-relu"), tmp_path / "relu.safetensors", imgsz=64)
    assert main(["tune", str(plain), "--data", str(voc_dataset), "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert "not a QCFS checkpoint" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in project.iterdir()) == ["exp"]  # the refused runs left no folder behind


def test_tuning_metadata_is_checked(qcfs_weights, tmp_path):
    from spikeyolo.checkpoint import read_tensors, write_safetensors

    out = tmp_path / "t.safetensors"
    snn = convert(live_model("yolov8n-relu", 4), "qcfs", burst=1)
    from spikeyolo.convert.artifact import save_snn

    save_snn(snn, out, {"imgsz": 64}, tuning={"timesteps": 2})
    meta = read_metadata(out, ("spikeyolo-snn/3",))
    for bad in ("not a mapping", {"timesteps": 10**9}):
        write_safetensors(read_tensors(out), tmp_path / "bad.safetensors", {**meta, "tuning": bad})
        with pytest.raises(CheckpointError, match="tuning"):
            load_snn(tmp_path / "bad.safetensors")


def test_an_interrupted_calibration_continues_to_the_same_biases(qcfs_weights, voc_dataset, tmp_path, monkeypatch):
    from spikeyolo.tune import calibrate, run

    settings = _settings(qcfs_weights, voc_dataset, epochs=0, calib_images=2)
    _, whole = tune(settings, tmp_path / "whole.safetensors")
    monkeypatch.setattr(run, "SAVE_EVERY_LAYERS", 4)
    real, calls = calibrate.snn_channel_means, []

    def cut(*args):
        calls.append(1)
        if len(calls) == 11:  # saved after layers 4 and 8; layers 9 and 10 are done again
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(calibrate, "snn_channel_means", cut)
    out = tmp_path / "cut.safetensors"
    with pytest.raises(KeyboardInterrupt):
        tune(settings, out)
    counted = []
    monkeypatch.setattr(calibrate, "snn_channel_means", lambda *args: counted.append(1) or real(*args))
    _, resumed = tune(settings, out)
    layers = len(calibrate.calibration_targets(whole))
    assert len(counted) == layers - 8  # only the layers not yet saved
    for (name, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name


def test_layer_taps_compare_each_spiking_layer_with_its_ann_activation(qcfs_model):
    """Bursts of L at T = 1 are the QCFS network layer by layer (feature loss ≈ 0, a few flipped levels at most);
    binary spikes at T = 2 are far from it: the taps pair each layer's rate with its own ANN activation."""
    images = _images(2, 7)
    names = [name for name, _ in convert(qcfs_model, "qcfs", burst=1).neurons()]
    with torch.no_grad(), LayerOutputs(qcfs_model, names) as ann_layers:
        qcfs_model(images)
    losses = {}
    for burst, steps in ((4, 1), (1, 2)):
        snn = convert(qcfs_model, "qcfs", burst=burst)
        with torch.no_grad(), LayerOutputs(snn.net, names, steps) as snn_layers:
            spiking_head(snn, images, steps)
        assert set(snn_layers.outputs) == set(names)
        losses[burst] = float(distill.feature_loss(snn_layers.outputs, ann_layers.outputs))
    assert losses[4] < 1e-3 and losses[1] > 0.05, losses


def test_a_damaged_resume_file_is_one_line(tmp_path):
    from dataclasses import asdict

    from spikeyolo.checkpoint import write_safetensors
    from spikeyolo.tune.run import RESUME_FORMAT, _load_progress

    settings = _settings("w.safetensors", "d")
    path = tmp_path / "x.resume.safetensors"
    assert settings.epochs == 2
    for progress in ({"epochs_done": "lots"}, {"calibrated_layers": -1}, {"unknown": 1}, {"seconds": "an hour"},
                     {"epochs_done": 10**9}, {"epochs_done": 3}, {"calibration_done": "yes"},
                     {"epochs_done": 1, "losses": [float("nan")]}, {"epochs_done": 1, "losses": ["a"]},
                     {"epochs_done": 1, "losses": [0.1, 0.2]}, {"epochs_done": 1, "losses": None},
                     {"calibrated_layers": True}):
        write_safetensors({"x": torch.zeros(1)}, path, {"format": RESUME_FORMAT, "settings": asdict(settings),
                                                        "progress": progress})
        with pytest.raises(ValueError, match="damaged"):
            _load_progress(path, settings)
    write_safetensors({"net.x": torch.zeros(1)}, path, {"format": RESUME_FORMAT, "settings": asdict(settings),
                                                        "progress": {"epochs_done": 1, "losses": [0.5]}})
    with pytest.raises(ValueError, match="1 epochs done but no optimizer state to continue them"):
        _load_progress(path, settings)  # else it would be taken as a finished run and written as tuned


def test_a_resume_file_with_damaged_optimizer_state_is_one_line(qcfs_weights, voc_dataset, tmp_path, monkeypatch):
    from spikeyolo.checkpoint import read_tensors, write_safetensors

    settings = _settings(qcfs_weights, voc_dataset, calibrate=False, thresholds=True)
    out = tmp_path / "cut.safetensors"
    _interrupt_in_second_epoch(settings, out, monkeypatch)
    resume = resume_path(out)
    saved, meta = read_tensors(resume), read_metadata(resume, ("spikeyolo-tune-resume/1",))
    step = next(k for k in saved if k.startswith("optim.adam.") and k.endswith(".step"))
    moment = next(k for k in saved if k.endswith(".exp_avg"))
    for damage in ({k: v for k, v in saved.items() if not k.startswith("optim.theta0.")},
                   {**saved, step: torch.zeros(10**6)},  # a step of 10^6 elements
                   {**saved, moment: torch.zeros(3)},
                   {**saved, "optim.adam.99999.step": torch.tensor(1.0)},
                   {**saved, "optim.steps_done": torch.tensor(10**9)}):
        write_safetensors(damage, resume, meta)
        with pytest.raises(ValueError, match="optimizer state is damaged"):
            tune(settings, out)
    assert not out.exists()


def test_the_method_record_names_every_term_the_run_trained_with():
    plain = run.describe_method(TuneSettings(weights="w", data="d", timesteps=4))
    layered = run.describe_method(TuneSettings(weights="w", data="d", timesteps=4, feature_weight=0.5))
    assert "layer" not in plain
    assert "every spiking layer's rate against its ANN activation × 0.5" in layered
    assert run.describe_method(TuneSettings(weights="w", data="d", timesteps=4, epochs=0,
                                            feature_weight=1.0)) == "bias correction (Li et al. 2021)"
