"""YOLOv5's anchor head carried into spikeyolo models (spikeyolo.anchor_head): import, decoding, files, conversion."""
import copy
import math

import pytest
import torch

from spikeyolo.anchor_head import AnchorDetect
from spikeyolo.checkpoint import CheckpointError
from spikeyolo.limits import LimitError
from spikeyolo.metadata import check_model_yaml
from spikeyolo.quantize.checkpoint import load_detector, save_detector
from spikeyolo.resources import resource
from spikeyolo.ultra import build_detection_model, yaml_model
from tests.conftest import SHARED

YOLOV5N = SHARED.parent / "weights" / "yolov5n-v6.1-coco.pt"
needs_yolov5n = pytest.mark.skipif(not YOLOV5N.is_file(), reason="../shared/weights not present")
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]  # YOLOv5's P3-P5
COCO_FIRST = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"]


def anchor_model(nc: int = 3, seed: int = 0):
    config = yaml_model(resource("configs/models/yolov5n.yaml"))
    config["anchors"] = ANCHORS
    torch.manual_seed(seed)
    model = build_detection_model(config, nc=nc).eval()
    model.names = {i: f"class{i}" for i in range(nc)}
    return model


def reference_decode(head: AnchorDetect, raw: list[torch.Tensor]) -> torch.Tensor:
    """YOLOv5 v6.1's decoding written out element by element: [B, 4 + nc, A] in the head's order."""
    rows = []
    for level, y in enumerate(raw):
        stride = float(head.stride[level])
        batch, anchors, height, width, _ = y.shape
        for a in range(anchors):
            for gy in range(height):
                for gx in range(width):
                    p = y[:, a, gy, gx].sigmoid()
                    aw, ah = ANCHORS[level][2 * a], ANCHORS[level][2 * a + 1]
                    x = (p[:, 0] * 2 - 0.5 + gx) * stride
                    yy = (p[:, 1] * 2 - 0.5 + gy) * stride
                    w, h = (p[:, 2] * 2) ** 2 * aw, (p[:, 3] * 2) ** 2 * ah
                    rows.append(torch.cat([torch.stack([x, yy, w, h], 1), p[:, 4:5] * p[:, 5:]], 1))
    return torch.stack(rows, 2)


@pytest.mark.numerics
def test_the_head_decodes_as_yolov5_does():
    model = anchor_model()
    head = model.model[-1]
    assert isinstance(head, AnchorDetect) and head.stride.tolist() == [8.0, 16.0, 32.0]
    assert head.anchors_in_pixels() == [[float(v) for v in level] for level in ANCHORS]
    with torch.no_grad():
        torch.manual_seed(1)
        decoded, raw = model(torch.rand(2, 3, 64, 64))
    assert [tuple(r.shape) for r in raw] == [(2, 3, 8, 8, 8), (2, 3, 4, 4, 8), (2, 3, 2, 2, 8)]
    assert decoded.shape == (2, 4 + 3, 3 * (64 + 16 + 4))
    assert torch.allclose(decoded, reference_decode(head, raw), rtol=1e-5, atol=1e-4)


def test_the_model_file_keeps_its_anchors_and_reloads_the_same_network(tmp_path):
    model = anchor_model()
    path = save_detector(model, tmp_path / "anchors.safetensors", imgsz=64)
    loaded, meta = load_detector(path)
    assert meta["model_yaml"]["anchors"] == ANCHORS and isinstance(loaded.model[-1], AnchorDetect)
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(images)[0], model(images)[0])


@pytest.mark.parametrize("anchors", [[[10, 13, 16, 30, 33, 23]] * 2, [[10, 13, 16, 30, 33]] * 3,
                                     [[10, 13, 16, 30, 33, -23]] * 3, [[10, 13, 16, 30, 33, 1e9]] * 3,
                                     [[10, 13, 16, 30, 33, True]] * 3, "10,13"])
def test_a_model_description_with_bad_anchors_is_one_line(anchors):
    config = yaml_model(resource("configs/models/yolov5n.yaml"))
    config["anchors"] = anchors
    with pytest.raises(LimitError, match="model_yaml.anchors must be 3 lists of 3") as err:
        check_model_yaml(config, "weights.safetensors")
    assert "\n" not in str(err.value)


@pytest.mark.numerics
def test_the_spiking_network_with_bursts_of_L_is_the_qcfs_network_at_the_first_step():
    """The head's three output convolutions accumulate (the anchor-free head's rule): at T = 1 with bursts of up to
    L spikes the SNN is the QCFS network with batch-norm folded, whose levels both compute alike."""
    from spikeyolo.convert.convert import convert
    from spikeyolo.quantize.swap import calibrate_thresholds, quantize_model
    from spikeyolo.ultra import fold_batchnorm

    model = anchor_model()
    quantize_model(model, 4)
    torch.manual_seed(2)
    images = torch.rand(2, 3, 64, 64)
    calibrate_thresholds(model, images)
    snn = convert(model, "qcfs", burst=4)
    assert sum(type(m).__name__ == "Accumulate" for m in snn.net.model[-1].m) == 3
    folded = fold_batchnorm(copy.deepcopy(model).eval())
    with torch.no_grad():
        expected, out = folded(images)[0], snn(images, 1)[0]
    close = torch.isclose(out, expected, rtol=1e-4, atol=1e-3).float().mean()
    assert close > 0.99, f"only {close:.3f} of the outputs agree"  # a flipped level may move a few, never most


@needs_yolov5n
def test_the_real_checkpoint_is_carried_whole_with_its_80_classes():
    from spikeyolo.importing import import_checkpoint

    imported = import_checkpoint(YOLOV5N, anchor_head=True)
    assert len(imported.carried) == 349 and imported.initialized == []
    assert len(imported.names) == 80 and imported.names[:9] == COCO_FIRST and imported.names[-1] == "toothbrush"
    head = imported.model.model[-1]
    assert isinstance(head, AnchorDetect) and head.nc == 80
    assert imported.model.yaml["anchors"] == [[float(v) for v in level] for level in ANCHORS]
    assert all(imported.model.state_dict()[key].shape == (255, width, 1, 1)
               for key, width in (("model.24.m.0.weight", 64), ("model.24.m.1.weight", 128),
                                  ("model.24.m.2.weight", 256)))


@needs_yolov5n
def test_the_anchor_head_goes_only_with_its_own_classes():
    from spikeyolo.importing import import_checkpoint

    with pytest.raises(CheckpointError, match="with its own classes"):
        import_checkpoint(YOLOV5N, names=["Person"], anchor_head=True)


@needs_yolov5n
def test_import_anchor_head_command_writes_the_whole_detector(tmp_path, capsys):
    from spikeyolo.checkpoint import read_metadata
    from spikeyolo.cli import main

    assert main(["import", str(YOLOV5N), "--anchor-head", "--imgsz", "320", "--project", str(tmp_path)]) == 0
    assert "349 tensors carried, 0 initialized" in capsys.readouterr().out
    meta = read_metadata(tmp_path / "exp" / "yolov5n-v6.1-coco.safetensors")
    assert meta["names"][:9] == COCO_FIRST and len(meta["names"]) == 80
    assert math.isclose(meta["model_yaml"]["anchors"][2][4], 373.0)


def test_anchors_without_a_detect_head_over_as_many_levels_are_one_line(tmp_path, capsys):
    """A stranger's model description naming anchors for a head over two levels: one clear line, no traceback."""
    from spikeyolo.checkpoint import write_safetensors
    from spikeyolo.cli import main

    config = yaml_model(resource("configs/models/yolov5n.yaml"))
    config["anchors"] = ANCHORS
    config["head"][-1] = [[17, 20], 1, "Detect", ["nc"]]
    with pytest.raises(ValueError, match="anchors need a Detect head over as many"):
        build_detection_model(config, nc=3)
    model = anchor_model()
    path = save_detector(model, tmp_path / "good.safetensors", imgsz=64)
    from spikeyolo.checkpoint import read_metadata, read_tensors

    meta = read_metadata(path)
    meta["model_yaml"] = config
    write_safetensors(read_tensors(path), tmp_path / "bad.safetensors", meta)
    assert main(["detect", str(tmp_path / "missing.jpg"), "--weights", str(tmp_path / "bad.safetensors"),
                 "--project", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "anchors" in err
