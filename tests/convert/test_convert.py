"""Whole-detector conversion: structure, accuracy against the ANN as T grows, artifacts, refusals."""
import copy

from pathlib import Path

import cv2
import numpy as np

import pytest
import torch
from torch import nn

from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.cli import main
from spikeyolo.convert import ConversionError, convert
from spikeyolo.convert.artifact import load_snn, save_snn
from spikeyolo.engine import Accumulate, CumulativeMaxPool, IFNeuron
from spikeyolo.quantize import calibrate_thresholds, quantize_model
from spikeyolo.ultra import build_detection_model, fold_batchnorm
from tests.conftest import ROOT, assert_runs_in_triton_interpreter

pytestmark = pytest.mark.numerics  # rerun under another oneDNN summation order (README: tests)


torch.manual_seed(1)
IMAGES = torch.rand(2, 3, 64, 64)


def live_model(name: str, levels: int | None = None) -> nn.Module:
    """A random detector whose signals survive to the head (Kaiming init), QCFS if ``levels``."""
    torch.manual_seed(0)
    model = build_detection_model(ROOT / "configs/models" / f"{name}.yaml", nc=3)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    if levels:
        quantize_model(model, levels)
        calibrate_thresholds(model, IMAGES)
    model.names = {0: "a", 1: "b", 2: "c"}
    return model.eval()




def relative_error(ann: nn.Module, snn, timesteps: int) -> float:
    """Mean |SNN − ANN| / mean |ANN| over the head's decoded outputs (boxes and class scores)."""
    with torch.no_grad():
        expected = ann(IMAGES)[0]
    got = snn(IMAGES, timesteps)[-1]
    return ((got - expected).abs().mean() / expected.abs().mean()).item()


@pytest.mark.parametrize("name,mode,levels", [("yolov8n-relu", "channel", None), ("yolov8n-relu", "layer", None),
                                              ("yolov8n-relu", "qcfs", 8), ("tiny-yolo-leaky", "channel", None),
                                              ("tiny-yolo-leaky", "qcfs", 8)])
def test_error_falls_as_timesteps_grow(name, mode, levels):
    ann = live_model(name, levels)
    snn = convert(ann, mode, calibration=[IMAGES])
    coarse, fine = relative_error(ann, snn, 4), relative_error(ann, snn, 64)
    assert fine < 0.7 * coarse, (coarse, fine)
    assert fine < 0.05


def test_qcfs_with_bursts_matches_the_ann_from_the_first_step():
    ann = live_model("yolov8n-relu", 4)
    binary = relative_error(ann, convert(ann, "qcfs"), 1)
    burst = relative_error(ann, convert(ann, "qcfs", burst=4), 1)
    assert burst < 1e-3 < binary


def layer_flips(ann: nn.Module, snn, images: torch.Tensor) -> list[float]:
    """Fraction of outputs that differ (> 1e-4) between each layer of the BN-folded QCFS network and the same layer
    of its SNN at T = 1, both fed the folded network's input to that layer, channels-last: the same convolution
    kernels on the same inputs, so the sums agree and a difference is the neuron's (a rounding tie can still
    land the other way: (θ/2 + z)/θ and z·L/λ + ½ are different float operations)."""
    folded = fold_batchnorm(copy.deepcopy(ann)).to(memory_format=torch.channels_last)
    inputs, outputs = {}, {}
    def keep(i):
        def hook(module, inp, out):
            inputs[i], outputs[i] = inp[0], out
        return hook

    for i, layer in enumerate(folded.model):
        layer.register_forward_hook(keep(i))
    snn.init_state(images)  # one image: each layer fed [1, ...] reads T = 1 from the shapes
    flips = []
    with torch.no_grad():
        folded(images)
        for i in range(len(folded.model) - 1):  # the Detect head: compared by the head tests
            got = snn.net.model[i](inputs[i])
            flips.append(((got - outputs[i]).abs() > 1e-4).float().mean().item())
    return flips


@pytest.mark.parametrize("name,expected_neurons", [("yolov8n-relu", 57), ("tiny-yolo-leaky", 18),
                                                    ("yolov5n-relu", 69)])
def test_qcfs_bursts_reproduce_every_layer_in_one_step(name, expected_neurons):
    """burst = L, T = 1: every layer equals the BN-folded QCFS network's, SPPF's chained pools and the leaky layers'
    negative side included (256 px: an 8x8 map at SPPF, so that its 5x5 pools are not all global maxima). The
    bound is on the fraction of flipped levels per layer: a summation-order tie may flip one; the bugs this test
    was written for flip whole layers (SPPF's shared pool state: 15-20 %; the off-by-one IBT limit: most negatives)."""
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(1, 3, 256, 256, generator=generator).contiguous(memory_format=torch.channels_last)
    ann = live_model(name, 4)
    snn = convert(ann, "qcfs", burst=4)
    assert len(snn.neurons()) == expected_neurons
    flips = layer_flips(ann, snn, images)
    assert max(flips) <= 0.002, [f"layer {i}: {f:.4f}" for i, f in enumerate(flips) if f > 0.002]
    if name == "tiny-yolo-leaky":  # the negative side is exercised: leaky neurons emit negative spikes
        assert any(n.emitted.lt(0).any() for _, n in snn.neurons())


def test_leaky_qcfs_detector_with_bursts_matches_from_the_first_step():
    """The whole leaky Tiny YOLO, bursts of L at T = 1: the head's output equals the folded QCFS network's."""
    ann = live_model("tiny-yolo-leaky", 4)
    assert relative_error(ann, convert(ann, "qcfs", burst=4), 1) < 1e-3


def test_structure_after_conversion():
    ann = live_model("tiny-yolo-leaky")
    snn = convert(ann, "channel", calibration=[IMAGES])
    neurons = [m for m in snn.net.modules() if isinstance(m, IFNeuron)]
    assert len(neurons) == 18 and len({id(n) for n in neurons}) == 18
    assert all(n.negative_slope == pytest.approx(0.1) and n.threshold.dim() == 1 for n in neurons)  # IBT, per channel
    assert not any(isinstance(m, nn.BatchNorm2d) for m in snn.net.modules())  # folded
    assert sum(isinstance(m, CumulativeMaxPool) for m in snn.net.modules()) == 5
    assert sum(isinstance(m, Accumulate) for m in snn.net.modules()) == 4  # 2 levels × (box, class)
    assert any(isinstance(m, nn.BatchNorm2d) for m in ann.modules())  # the ANN is left untouched


def test_anytime_outputs_are_prefix_consistent():
    """Row t of one long run equals the final output of a run of t+1 steps: read every T in one pass."""
    snn = convert(live_model("yolov8n-relu", 4), "qcfs")
    long = snn(IMAGES, 12)
    for steps in (1, 4, 9):
        assert torch.allclose(snn(IMAGES, steps)[-1], long[steps - 1], atol=1e-5)
    assert torch.allclose(snn(IMAGES, 12, chunk=5), long, atol=1e-5)


def test_artifact_roundtrip_and_timesteps_at_run_time(tmp_path):
    snn = convert(live_model("yolov8n-relu", 4), "qcfs")
    path = save_snn(snn, tmp_path / "snn.safetensors", {"weights": "test"})
    again = load_snn(path)
    for steps in (3, 7):
        assert torch.equal(snn(IMAGES, steps), again(IMAGES, steps))
    assert again.meta["mode"] == "qcfs" and again.meta["initial_membrane"] == 0.5


def test_refusals_name_the_problem():
    silu = build_detection_model(ROOT / "configs/models/yolov8n.yaml", nc=3).eval()
    with pytest.raises(ConversionError, match=r"SiLU at model\.0\.act.*retrain with QCFS"):
        convert(silu, "channel", calibration=[IMAGES])
    relu = live_model("yolov8n-relu")
    with pytest.raises(ConversionError, match="needs a QCFS-trained model"):
        convert(relu, "qcfs")
    with pytest.raises(ConversionError, match="needs calibration images"):
        convert(relu, "layer")
    mixed = live_model("yolov8n-relu", 4)
    mixed.model[4].cv1.act = nn.ReLU()  # one plain ReLU in a QCFS model: named, not an AttributeError
    with pytest.raises(ConversionError, match=r"ReLU at model\.4\.cv1\.act has none"):
        convert(mixed, "qcfs")
    relu.model[2].m[0].add_module("extra", nn.GELU())
    with pytest.raises(ConversionError, match="GELU at model.2.m.0.extra"):
        convert(relu, "channel", calibration=[IMAGES])


def test_cli_convert(tmp_path, voc_dataset, capsys):
    weights = save_detector(live_model("yolov8n-relu", 4), tmp_path / "m.safetensors", imgsz=64)
    assert main(["convert", str(weights)]) == 0  # into a new run folder of ./runs/convert, not beside the input
    assert Path("runs/convert/exp/m-snn-qcfs.safetensors").is_file() and not list(tmp_path.glob("*-snn-*"))
    assert main(["convert", str(weights), "--mode", "channel", "--calib", str(voc_dataset), "--project",
                 str(tmp_path), "--name", "ch"]) == 0
    out = tmp_path / "ch" / "m-snn-channel.safetensors"
    assert load_snn(out).meta["source"]["calib"] == str(voc_dataset)
    assert main(["convert", str(weights), "--mode", "layer"]) == 2
    assert "--mode layer needs --calib" in capsys.readouterr().err
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    # a converted SNN keeps its mode, burst and SNM: asking detect for others is one clear line (val: its tests)
    assert main(["detect", str(image), "--weights", str(out), "--burst", "4", "--project", str(tmp_path / "det")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "converted in channel mode with burst 1: for --burst 4 use" in err[0], err
    assert not (tmp_path / "det").exists()
    assert main(["detect", str(image), "--weights", str(out), "--burst", "1", "--project", str(tmp_path / "det")]) == 0


def test_snm_conversion_is_closer_to_the_ann_at_few_steps(tmp_path):
    """Signed neurons with memory: fewer unevenness errors than IF at T = L; the artifact keeps them."""
    ann = live_model("yolov8n-relu", 4)
    snn = convert(ann, "qcfs", snm=True)
    assert all(n.snm for _, n in snn.neurons())
    assert relative_error(ann, snn, 4) < relative_error(ann, convert(ann, "qcfs"), 4)
    again = load_snn(save_snn(snn, tmp_path / "snm.safetensors", {"weights": "test"}))
    assert again.meta["snm"] and torch.equal(snn(IMAGES, 5), again(IMAGES, 5))
    leaky = convert(live_model("tiny-yolo-leaky"), "channel", calibration=[IMAGES], snm=True)
    assert {n.kind for _, n in leaky.neurons()} == {"signed-snm"}  # what was asked, on leaky layers too
    assert {n.kind for _, n in convert(live_model("tiny-yolo-leaky"), "channel", calibration=[IMAGES]).neurons()} \
        == {"ibt"}  # v0 = 0 without --snm: the classic IBT neuron of Spiking-YOLO


def test_channels_last_runs_the_same_network():
    """Weights and activations channels-last by default (the fast layout); NCHW on request, same detections."""
    snn = convert(live_model("yolov8n-relu", 4), "qcfs", burst=4)
    conv = next(m for m in snn.net.modules() if isinstance(m, nn.Conv2d))
    assert snn.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
    last = snn(IMAGES, 3)
    snn.use_channels_last(False)
    assert conv.weight.is_contiguous()
    plain = snn(IMAGES, 3)
    assert ((last - plain).abs().mean() / plain.abs().mean()).item() < 1e-3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_convolutions_keep_float32_neurons(precision):
    """Convolutions under autocast; neurons take the reduced-precision currents and emit spikes in that dtype (the
    next convolution's input: no cast up and back), each a multiple of the float32 θ rounded once; membranes and the
    head's sums stay float32."""
    snn = convert(live_model("yolov8n-relu", 4), "qcfs", burst=4)
    exact = snn(IMAGES, 2)
    snn.set_precision(precision)
    first = snn.neurons()[0][1]
    seen = []
    first.register_forward_hook(lambda m, inp, out: seen.append((inp[0].dtype, out)))
    low = snn(IMAGES, 2)
    assert seen[0][0] != torch.float32  # the convolution did run in reduced precision
    spikes = seen[0][1]
    counts = (spikes.float() / first.threshold.view(1, -1, 1, 1)).round()
    assert spikes.dtype == seen[0][0] and torch.equal((counts * first.threshold.view(1, -1, 1, 1)).to(spikes.dtype),
                                                      spikes)
    assert low.dtype == torch.float32 and all(n.v.dtype == torch.float32 for _, n in snn.neurons())
    assert 0 < ((low - exact).abs().mean() / exact.abs().mean()).item() < 0.1
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        snn.set_precision("int4")


WHOLE_DETECTOR_TRITON = """
import torch
from spikeyolo.convert import convert
from tests.convert.test_convert import IMAGES, live_model

cases = [("yolov8n-relu", "qcfs", {"burst": 1}), ("yolov8n-relu", "qcfs", {"burst": 4}),
         ("yolov8n-relu", "qcfs", {"snm": True}), ("tiny-yolo-leaky", "channel", {"calibration": [IMAGES]}),
         ("tiny-yolo-leaky", "qcfs", {"burst": 2})]
for name, mode, options in cases:
    snn = convert(live_model(name, 4 if mode == "qcfs" else None), mode, **options)
    reference = snn(IMAGES, 3)
    snn.set_backend("triton")
    assert torch.equal(snn(IMAGES, 3), reference), (name, mode, options)
print("ok")
"""


def test_fused_backend_runs_the_detector_in_interpreter():
    """The whole converted detector (channels-last, chunked, per-channel IBT) with the Triton neurons, run by
    Triton's CPU interpreter, gives the torch backend's outputs exactly: binary, burst, SNM, IBT and signed
    neurons with memory."""
    assert_runs_in_triton_interpreter(WHOLE_DETECTOR_TRITON)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_backend_runs_the_detector_on_gpu():
    """The whole converted detector on CUDA: the Triton neurons give the torch backend's outputs, fp16 too."""
    snn = convert(live_model("yolov8n-relu", 4), "qcfs", burst=4).to("cuda")
    images = IMAGES.cuda()
    reference = snn(images, 3)
    snn.set_backend("triton")
    fused = snn(images, 3)
    assert ((fused - reference).abs().mean() / reference.abs().mean()).item() < 1e-3
    snn.set_precision("fp16")
    half = snn(images, 3)
    assert half.dtype == torch.float32 and ((half - reference).abs().mean() / reference.abs().mean()).item() < 0.1


def test_reduced_precision_weights_are_converted_once_and_fp32_restores_them_exactly():
    """set_precision converts the convolutions' weights once (not per call, as autocast does), keeps the head's box
    decoding float32, and going back to fp32 restores the float32 weights bit for bit."""
    snn = convert(live_model("yolov8n-relu", 4), "qcfs", burst=4)
    exact = snn(IMAGES, 2)
    snn.set_precision("bf16")
    dfl = snn.net.model[-1].dfl.conv
    convs = [m for m in snn.net.modules() if isinstance(m, nn.Conv2d) and m is not dfl]
    assert {c.weight.dtype for c in convs} == {torch.bfloat16} and dfl.weight.dtype == torch.float32
    low = snn(IMAGES, 2)
    assert {c.weight.dtype for c in convs} == {torch.bfloat16} and low.dtype == torch.float32
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs if c.weight.shape[-1] > 1)
    snn.set_precision("fp32")
    assert torch.equal(snn(IMAGES, 2), exact)
