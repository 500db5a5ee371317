"""The Python API: SpikingYOLO takes what a user has (a path, an array, a PIL image, a list, a video) and returns
Results with names, per-step detections, plot, save and JSON; the README's example runs as written."""
import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from spikeyolo import Detections, SpikingYOLO
from spikeyolo.cli import main
from spikeyolo.detect.predictor import Detector
from tests.conftest import ROOT
from tests.detect.test_detect_cli import _video, weights  # noqa: F401  (fixture)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (72, 90, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model(weights):  # noqa: F811
    return SpikingYOLO(weights, timesteps=2, conf=0.001, device="cpu")


def test_every_kind_of_input_gives_one_result_per_image(model, tmp_path):
    image = _image()
    cv2.imwrite(str(tmp_path / "a.png"), image)
    cv2.imwrite(str(tmp_path / "b.png"), _image(1))
    one = model(image)
    assert len(one) == 1 and one[0].image.shape == (72, 90, 3) and one[0].names == model.names
    from_path = model(tmp_path / "a.png")[0]
    assert from_path.path == str(tmp_path / "a.png") and np.array_equal(from_path.boxes, one[0].boxes)
    rgb = Image.fromarray(image[..., ::-1].copy())  # PIL holds RGB: the same pixels as the BGR array
    assert np.array_equal(model(rgb)[0].boxes, one[0].boxes)
    assert len(model(tmp_path)) == 2 and len(model([image, str(tmp_path / "b.png"), image[..., 0]])) == 3
    video = _video(tmp_path / "v.avi", frames=3)
    frames = model(video)
    assert [r.frame for r in frames] == [0, 1, 2] and all(r.path == str(video) for r in frames)
    assert len(model(np.stack([image, image]))) == 2  # an N×H×W×3 batch
    with pytest.raises(ValueError, match="expected H×W×3 BGR images"):
        model([image, "not an array nor a path".encode()])


def test_results_hold_names_steps_and_the_detect_record(model, tmp_path):
    result = model(_image(), every_step=True)[0]
    assert len(result) > 0 and result.labels == [model.names[int(c)] for c in result.classes]
    assert len(result.steps) == 2 and np.array_equal(result.steps[-1].boxes, result.boxes)
    assert result.plot().shape == result.image.shape and result.plot(step=1).shape == result.image.shape
    with pytest.raises(ValueError, match="steps 1 … 2"):
        result.plot(step=3)
    saved = result.save(tmp_path / "shown.jpg")
    assert cv2.imread(str(saved)).shape == (72, 90, 3)
    with pytest.raises(ValueError, match="save as one of"):
        result.save(tmp_path / "shown.gif")
    record = json.loads(result.to_json())
    assert record["timesteps"] == 2 and len(record["steps"]) == 2
    assert [d["name"] for d in record["detections"]] == result.labels


def test_to_json_is_the_line_detect_writes(model, weights, tmp_path):  # noqa: F811
    cv2.imwrite(str(tmp_path / "a.png"), _image())
    assert main(["detect", str(tmp_path / "a.png"), "--weights", str(weights), "--timesteps", "2", "--conf", "0.001",
                 "--device", "cpu", "--project", str(tmp_path / "runs")]) == 0
    written = (tmp_path / "runs/exp/predictions.jsonl").read_text().splitlines()
    assert json.loads(written[0]) == model(tmp_path / "a.png")[0].to_dict()


def test_the_detector_takes_one_array_or_a_path(weights, tmp_path):  # noqa: F811
    detector = Detector(weights, timesteps=2, conf=0.01, device="cpu")
    image = _image()
    cv2.imwrite(str(tmp_path / "a.png"), image)
    one, listed, from_path = detector(image), detector([image]), detector(str(tmp_path / "a.png"))
    assert len(one) == 1 and isinstance(one[0], Detections)
    assert np.array_equal(one[0].boxes, listed[0].boxes) and np.array_equal(one[0].boxes, from_path[0].boxes)
    with pytest.raises(ValueError, match="cannot read image"):
        detector(str(tmp_path / "missing.png"))


def test_max_det_and_classes_filter(weights):  # noqa: F811
    image = _image()
    everything = SpikingYOLO(weights, timesteps=2, conf=0.001, device="cpu")(image)[0]
    assert len(set(everything.classes.tolist())) == 2, "the fixture should find both classes"
    capped = SpikingYOLO(weights, timesteps=2, conf=0.001, max_det=3, device="cpu")(image)[0]
    only = SpikingYOLO(weights, timesteps=2, conf=0.001, classes=[1], device="cpu")(image)[0]
    assert len(capped) == 3 and np.allclose(capped.scores, everything.scores[:3])
    assert len(only) > 0 and set(only.classes.tolist()) == {1}


def test_importing_the_package_loads_no_torch():
    code = "import sys, spikeyolo; assert 'torch' not in sys.modules; assert 'SpikingYOLO' in dir(spikeyolo)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(block for block in blocks if "from spikeyolo import SpikingYOLO" in block)


@pytest.mark.skipif(not (ROOT / "weights/bccd-yolov8n-qcfs.safetensors").is_file(), reason="no shipped weights")
def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    """The README's example, executed from a folder holding the repository's demo/ and weights/ (as a checkout)."""
    for folder in ("demo", "weights"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(_readme_python(), "README.md", "exec"), namespace)
    assert namespace, "the example defined nothing"
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink() and "demo" not in p.parts
               and "weights" not in p.parts]
    assert written, "the example saves a picture"
