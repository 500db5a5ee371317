"""Checkpoints: safetensors + metadata, reloaded in a fresh process with identical outputs."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from spikeyolo.checkpoint import CheckpointError, read_metadata
from spikeyolo.quantize.checkpoint import load_detector, save_detector
from spikeyolo.quantize import QCFS, quantize_model
from spikeyolo.ultra import build_detection_model, conv_blocks
from tests.conftest import ROOT

RELOAD = """
import sys, torch
from spikeyolo.quantize.checkpoint import load_detector
model, meta = load_detector(sys.argv[1])
torch.manual_seed(1)
x = torch.rand(2, 3, 64, 64)
with torch.no_grad():
    torch.save(model(x)[0], sys.argv[2])
"""


@pytest.fixture
def qcfs_model():
    torch.manual_seed(0)
    model = build_detection_model(ROOT / "configs/models/tiny-yolo-leaky.yaml", nc=2)
    quantize_model(model, levels=4)
    for i, (_, block) in enumerate(conv_blocks(model)):
        block.act.threshold.data.fill_(1.0 + 0.1 * i)  # distinct λ per layer
        block.bn.running_mean.uniform_(-0.1, 0.1)
    model.names = {0: "square", 1: "bar"}
    return model.eval()


def test_reload_in_fresh_process_gives_identical_outputs(qcfs_model, tmp_path):
    path = save_detector(qcfs_model, tmp_path / "m.safetensors", imgsz=64)
    torch.manual_seed(1)
    with torch.no_grad():
        expected = qcfs_model(torch.rand(2, 3, 64, 64))[0]
    subprocess.run([sys.executable, "-c", RELOAD, str(path), str(tmp_path / "out.pt")], check=True, cwd=ROOT)
    got = torch.load(tmp_path / "out.pt")  # written by the test itself
    assert torch.equal(got, expected)


def test_metadata_is_readable_json(qcfs_model, tmp_path):
    path = save_detector(qcfs_model, tmp_path / "m.safetensors", imgsz=64, data="shapes")
    meta = read_metadata(path)
    assert meta["names"] == ["square", "bar"] and meta["imgsz"] == 64
    spec = meta["quantization"]
    assert spec["levels"] == 4 and len(spec["layers"]) == len(conv_blocks(qcfs_model))
    assert spec["layers"]["model.0"]["threshold"] == pytest.approx(1.0)
    assert spec["layers"]["model.0"]["negative_slope"] == pytest.approx(0.1)
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert "spikeyolo" in json.loads(path.read_bytes()[8:8 + header_len])["__metadata__"]
    model, _ = load_detector(path)
    assert isinstance(conv_blocks(model)[3][1].act, QCFS)
    assert conv_blocks(model)[3][1].act.threshold.item() == pytest.approx(1.3)


def test_rejects_wrong_format_and_nan(qcfs_model, tmp_path):
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="bogus.safetensors"):
        load_detector(bogus)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="is not a spikeyolo-detector/1 file"):
        load_detector(plain)
    path = save_detector(qcfs_model, tmp_path / "nan.safetensors")
    qcfs_model.model[0].conv.weight.data[0, 0, 0, 0] = float("nan")
    save_detector(qcfs_model, path)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_detector(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_detector(tmp_path / "missing.safetensors")
