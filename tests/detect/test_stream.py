"""Streaming detection: membranes carried from frame to frame, reset by the stated policy; its options refused
in one line where they cannot apply."""
import numpy as np
import pytest
import torch

from spikeyolo.cli import main
from spikeyolo.detect.predictor import Detector, StreamPolicy
from spikeyolo.ultra import letterbox_batch
from tests.detect.test_detect_cli import _video, weights  # noqa: F401  (fixture)


def frames(count: int, seed: int = 0) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    return [generator.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(count)]


def test_a_stream_carries_the_state_and_resets_by_its_policy(weights):  # noqa: F811
    """reset_every 2 over 5 frames: frames 1, 3 and 5 start from reset membranes; the outputs are those of the
    network streamed by hand with the same resets (the head's running output since the last reset)."""
    detector = Detector(weights, timesteps=2, device="cpu", conf=0.0, stream=StreamPolicy(reset_every=2))
    images = frames(5)
    found = [detector._forward([image], every_step=False)[0] for image in images]
    assert detector.resets == 3
    snn = Detector(weights, timesteps=2, device="cpu").model
    for i, image in enumerate(images):
        batch = letterbox_batch([image], detector.imgsz)
        expected = snn(batch, 2) if i % 2 == 0 else snn.stream(batch, 2)
        assert torch.equal(found[i], expected[-1:]), i
    assert not torch.equal(found[1], snn(letterbox_batch([images[1]], detector.imgsz), 2)[-1:])  # it did carry


def test_a_scene_cut_resets_the_stream(weights):  # noqa: F811
    detector = Detector(weights, timesteps=1, device="cpu", stream=StreamPolicy(scene_cut=0.2))
    still, other = np.full((64, 96, 3), 40, np.uint8), np.full((64, 96, 3), 220, np.uint8)
    for image in (still, still, still, other, other):
        detector([image])
    assert detector.resets == 2  # the first frame and the cut
    with pytest.raises(ValueError, match="scene_cut must be in"):
        StreamPolicy(scene_cut=1.5)
    with pytest.raises(ValueError, match="needs the SNN"):
        Detector(weights, device="cpu", ann=True, stream=StreamPolicy())


def test_stream_cli_runs_a_video_and_names_its_policy(weights, tmp_path, capsys):  # noqa: F811
    video = _video(tmp_path / "v.avi")
    assert main(["detect", str(video), "--weights", str(weights), "--stream", "--reset-every", "4",
                 "--project", str(tmp_path / "runs"), "--device", "cpu"]) == 0
    assert "stream, reset every 4 frames" in capsys.readouterr().out


@pytest.mark.parametrize("options,expected", [
    (["--reset-every", "3"], "--reset-every and --scene-cut set when a stream resets: they need --stream"),
    (["--stream", "--batch", "2"], "--stream runs frames one at a time"),
    (["--stream", "--ann"], "--stream and --compile run the SNN"),
    (["--stream", "--scene-cut", "2"], "--stream: scene_cut must be in [0, 1]"),
    (["--stream", "--reset-every", "-1"], "--stream: reset_every must be >= 0"),
])
def test_bad_stream_options_are_one_line(options, expected, weights, tmp_path, capsys):  # noqa: F811
    video = _video(tmp_path / "v.avi")
    assert main(["detect", str(video), "--weights", str(weights), "--project", str(tmp_path / "runs"),
                 *options]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()
