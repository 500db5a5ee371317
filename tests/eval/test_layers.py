"""spikeyolo layers: each spiking layer's error against its ANN at each T, computed as defined, exact where the
SNN is exact, and the command's report and one-line errors."""
import json

import pytest
import torch

from spikeyolo.cli import main
from spikeyolo.convert import convert
from spikeyolo.convert.artifact import save_snn
from spikeyolo.eval.layers import layer_errors, table
from spikeyolo.quantize.checkpoint import load_detector, save_detector
from spikeyolo.tune.calibrate import LayerOutputs, calibration_targets
from tests.convert.test_convert import live_model
from tests.eval.test_val_cli import weights  # noqa: F401 (the fixture)

pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def qcfs_model():
    return live_model("yolov8n-relu", 4)


def _images(n, seed):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _per_step_outputs(snn, images, steps, chunk, names):
    """Every named layer's raw outputs of one run, chunk by chunk, joined: [steps·N, ...]."""
    chunks = {n: [] for n in names}
    hooks = [snn.net.get_submodule(n).register_forward_hook(lambda _m, _i, out, n=n: chunks[n].append(out.clone()))
             for n in names]
    try:
        snn(images, steps, chunk=chunk)
    finally:
        for hook in hooks:
            hook.remove()
        snn.reset()
    return {n: torch.cat(outs) for n, outs in chunks.items()}


def _reference(snn, ann, batches, timesteps, names, chunk):
    """Per name and T, (‖SNN − ANN‖², ‖ANN‖², Σ(SNN − ANN), Σ|ANN|, the differences of every batch) from the same
    runs' raw per-step outputs (the same chunks), the rate over the first t steps taken here by slicing (an
    accumulator's step-t output as it is)."""
    sums = {(n, t): [0.0, 0.0, 0.0, 0.0, []] for n in names for t in timesteps}
    steps = max(timesteps)
    for images in batches:
        with torch.no_grad(), LayerOutputs(ann, names) as a:
            ann(images)
        outputs = _per_step_outputs(snn, images, steps, chunk, names)
        for n in names:
            per_step = outputs[n].double().view(steps, images.shape[0], *a.outputs[n].shape[1:])
            head = not hasattr(snn.net.get_submodule(n), "threshold")
            for t in timesteps:
                got = per_step[t - 1] if head else per_step[:t].mean(0)
                want = a.outputs[n].double()
                acc = sums[(n, t)]
                acc[0] += float(((got - want) ** 2).sum())
                acc[1] += float((want ** 2).sum())
                acc[2] += float((got - want).sum())
                acc[3] += float(want.abs().sum())
                acc[4].append(got - want)
    return sums


def _centred(differences, norm):
    """‖d − each channel's mean of d‖ / ‖ANN‖ over every batch's differences d [N, C, ...]."""
    d = torch.cat([x.transpose(0, 1).flatten(1) for x in differences], 1)
    return float((d - d.mean(1, keepdim=True)).norm()) / norm ** 0.5


def test_layer_errors_are_the_relative_error_and_mean_shift_of_each_layer(qcfs_model):
    snn = convert(qcfs_model, "qcfs", burst=1)
    snn.use_channels_last(False)
    batches = [_images(2, 1), _images(3, 2)]  # sums over batches of different sizes
    errors = layer_errors(snn, qcfs_model, batches, [1, 3, 4], chunk=2)  # T = 3 spans two chunks
    names = calibration_targets(snn)
    assert [e.name for e in errors] == names
    assert {e.kind for e in errors} == {"neuron", "head"}
    reference = _reference(snn, qcfs_model, batches, [1, 3, 4], names, chunk=2)
    for e in errors:
        for t in (1, 3, 4):
            squared, norm, difference, magnitude, differences = reference[(e.name, t)]
            assert e.relative_error[t] == pytest.approx(squared ** 0.5 / norm ** 0.5, rel=1e-9, abs=1e-12), (e.name, t)
            assert e.mean_shift[t] == pytest.approx(difference / magnitude, rel=1e-9, abs=1e-12), (e.name, t)
            assert e.centred_error[t] == pytest.approx(_centred(differences, norm), rel=1e-6, abs=1e-9), (e.name, t)
            assert e.centred_error[t] <= e.relative_error[t] + 1e-12
    text = table(errors, [1, 3, 4])
    assert len(text.splitlines()) == len(names) + 1 and "err T=3" in text and "centred T=4" in text


def test_the_first_layer_is_exact_at_t_equal_to_its_levels_and_bursts_at_every_t(qcfs_model):
    """The first spiking layer sees a constant current: binary IF reproduces the L = 4 quantizer after 4 steps, not
    after 1; bursts of up to L reproduce the whole QCFS network at T = 1 (up to levels that float differences
    between the folded and unfolded convolutions flip: a bound, not an equality)."""
    images = [_images(2, 5)]
    binary = layer_errors(convert(qcfs_model, "qcfs", burst=1), qcfs_model, images, [1, 4])
    assert binary[0].name == "model.0.act"
    assert binary[0].relative_error[4] < 1e-3 < 0.1 < binary[0].relative_error[1]
    assert binary[-1].relative_error[4] > 0.01  # deeper, binary spikes at T = 4 are not the ANN
    bursts = layer_errors(convert(qcfs_model, "qcfs", burst=4), qcfs_model, images, [1, 2])
    at_one = sorted(e.relative_error[1] for e in bursts)
    assert at_one[len(at_one) // 2] < 1e-4 and at_one[-1] < 0.1, at_one
    # after 2 steps of bursts a layer's rate has 2L levels: nearer its unquantized activation, not the L-level ANN
    assert bursts[0].relative_error[2] > 0.05


def test_layers_command_prints_and_writes_the_errors(weights, voc_dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "exp" / "layers.json"
    rc = main(["layers", "--weights", str(weights), "--data", str(voc_dataset), "--timesteps", "1,4", "--burst", "1",
               "--images", "3", "--chunk", "1", "--project", str(tmp_path)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    report = json.loads(out.read_text())
    assert report["images"] == 3 and report["timesteps"] == [1, 4] and report["burst"] == 1
    assert report["layers"][0]["name"] == "model.0.act" and set(report["layers"][0]["relative_error"]) == {"1", "4"}
    assert "err T=4" in printed and printed.count("model.") == len(report["layers"])


def test_an_snn_artifact_needs_its_ann_named_when_not_beside_it(weights, voc_dataset, tmp_path, capsys):  # noqa: F811
    model, _ = load_detector(weights, "cpu")
    artifact = tmp_path / "alone" / "snn.safetensors"
    artifact.parent.mkdir()
    save_snn(convert(model, "qcfs", burst=1), artifact, {"weights": str(weights), "imgsz": 64, "levels": 4})
    rc = main(["layers", "--weights", str(artifact), "--data", str(voc_dataset), "--images", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "m.safetensors" in err and "--ann" in err, err
    out = tmp_path / "l" / "layers.json"
    rc = main(["layers", "--weights", str(artifact), "--ann", str(weights), "--data", str(voc_dataset), "--images", "2",
               "--timesteps", "4", "--project", str(tmp_path), "--name", "l"])
    assert rc == 0 and json.loads(out.read_text())["layers"][0]["relative_error"]["4"] < 1e-3, capsys.readouterr()
    other = live_model("yolov8n-relu", 4)  # three classes: not the two-class network the SNN came from
    other_weights = save_detector(other, tmp_path / "o.safetensors", imgsz=64)
    rc = main(["layers", "--weights", str(artifact), "--ann", str(other_weights), "--data", str(voc_dataset),
               "--images", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "not the network" in err and len(err.splitlines()) == 1, err
    rc = main(["layers", "--weights", str(artifact), "--ann", str(artifact), "--data", str(voc_dataset)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "is an SNN artifact" in err and len(err.splitlines()) == 1, err
