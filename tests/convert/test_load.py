"""One loader from weights to a running SNN: one set of defaults for every command, the metadata read once."""
import pytest
import torch

from spikeyolo import checkpoint
from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.cli import main
from spikeyolo.convert.artifact import load_snn
from spikeyolo.convert.load import describe_neurons, load_model
from spikeyolo.detect.predictor import Detector
from tests.convert.test_convert import live_model

pytestmark = pytest.mark.numerics  # rerun under another oneDNN summation order (README: tests)


@pytest.fixture(scope="module")
def qcfs_weights(tmp_path_factory):
    return save_detector(live_model("yolov8n-relu", 4), tmp_path_factory.mktemp("w") / "m.safetensors", imgsz=64)


def test_every_entry_point_builds_the_same_snn_by_default(qcfs_weights, tmp_path):
    """detect (Detector), val (load_model) and convert: a QCFS checkpoint becomes the same network, bursts of L."""
    loaded = load_model(qcfs_weights)
    detector = Detector(qcfs_weights, device="cpu")
    assert main(["convert", str(qcfs_weights), "--project", str(tmp_path), "--name", "c"]) == 0
    converted = load_snn(tmp_path / "c" / f"{qcfs_weights.stem}-snn-qcfs.safetensors")
    assert loaded.settings["burst"] == detector.burst == converted.meta["burst"] == 4
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    expected = loaded.snn(images, 2)
    assert torch.equal(detector.model(images, 2), expected) and torch.equal(converted(images, 2), expected)
    assert loaded.settings["neurons"] == describe_neurons(converted) == "IF, bursts of up to 4 spikes"


def test_weights_metadata_is_read_once(qcfs_weights, monkeypatch):
    calls = []
    original = checkpoint.read_metadata
    monkeypatch.setattr("spikeyolo.convert.load.read_metadata", lambda *a, **k: calls.append(a) or original(*a, **k))
    monkeypatch.setattr(checkpoint, "read_metadata", lambda *a, **k: calls.append(a) or original(*a, **k))
    load_model(qcfs_weights)
    assert len(calls) == 1


def test_leaky_layers_are_named_as_what_runs():
    from spikeyolo.convert import convert

    snn = convert(live_model("tiny-yolo-leaky", 4), "qcfs", burst=1)
    assert describe_neurons(snn) == "signed leaky neurons with memory, binary spikes"
    assert {spec["kind"] for spec in snn.meta["neurons"].values()} == {"signed-snm"}
