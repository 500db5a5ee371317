"""The live demo, headless: a video file stands in for the camera; the written video has every frame."""
import cv2
import numpy as np
import pytest

from spikeyolo.cli import main
from spikeyolo.demo import LiveDemo
from spikeyolo.demo.live import LiveSummary
from tests.detect.test_detect_cli import _video, weights  # noqa: F401  (fixture)


def _frame_count(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    return count


def test_headless_writes_every_frame_side_by_side(weights, tmp_path, capsys):  # noqa: F811
    source = _video(tmp_path / "cam.avi", frames=7)
    assert main(["webcam", "--source", str(source), "--weights", str(weights), "--headless", "--project",
                 str(tmp_path), "--timesteps", "2", "--side-by-side", "--screenshot"]) == 0
    out = tmp_path / "exp" / "webcam.mp4"
    printed = capsys.readouterr()
    assert "7 frame(s)" in printed.out and _frame_count(out) == 7
    assert "webcam (headless): 100%" in printed.err and "7/7" in printed.err  # headless: a bar, not silence
    shot = cv2.imread(str(tmp_path / "exp" / "last_frame.png"))
    assert shot.shape[1] == 2 * 96 and shot.shape[0] > 64  # two panels, firing-rate strip below
    assert not list(tmp_path.rglob(".*tmp*"))


def test_keys_change_timesteps_and_toggle_the_ann(weights, tmp_path):  # noqa: F811
    demo = LiveDemo(str(_video(tmp_path / "cam.avi", frames=2)), weights, timesteps=4)
    assert demo.handle_key(ord("+")) and demo.timesteps == 8
    demo.handle_key(ord("-")), demo.handle_key(ord("-")), demo.handle_key(ord("-")), demo.handle_key(ord("-"))
    assert demo.timesteps == 1
    demo.handle_key(ord("a"))
    assert demo.ann is not None and demo.render(np.zeros((64, 96, 3), np.uint8)).shape[1] == 192
    demo.handle_key(ord("a"))
    assert demo.ann is None and not demo.handle_key(ord("q"))


def test_firing_rates_are_measured_per_layer(weights, tmp_path):  # noqa: F811
    demo = LiveDemo(str(_video(tmp_path / "cam.avi", frames=2)), weights, timesteps=3)
    demo.render(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8))
    rates = demo.snn.firing_rates()
    assert len(rates) == len(demo.snn.model.neurons()) and all(0.0 <= r <= 4.0 for r in rates.values())
    assert any(r > 0 for r in rates.values())


def test_event_mode_simulates_events_from_the_frames(weights, tmp_path):  # noqa: F811
    demo = LiveDemo(str(_video(tmp_path / "cam.avi", frames=3)), weights, timesteps=2, events=True)
    first = demo.events(np.full((64, 96, 3), 50, np.uint8))
    second = demo.events(np.full((64, 96, 3), 200, np.uint8))
    assert first.max() == 0 and second[..., 0].max() == 255 and second[..., 1].max() == 0  # all ON events


def test_a_window_run_writes_nothing_unless_asked(weights, tmp_path, monkeypatch):  # noqa: F811
    """Without --save, --headless or --screenshot the live window leaves no run folder behind."""
    source = _video(tmp_path / "cam.avi", frames=2)
    asked = []
    monkeypatch.setattr(LiveDemo, "run", lambda self, *args: asked.append(args) or LiveSummary(2, 1.0, None, 4))
    assert main(["webcam", "--source", str(source), "--weights", str(weights), "--project", str(tmp_path / "r")]) == 0
    assert asked == [(False, None, None, None)] and not (tmp_path / "r").exists()


@pytest.mark.parametrize("source,expected", [("missing.mp4", "not found"), ("7", "cannot open camera")])
def test_bad_source_is_one_line(source, expected, weights, tmp_path, capsys):  # noqa: F811
    assert main(["webcam", "--source", source, "--weights", str(weights), "--headless", "--project",
                 str(tmp_path / "r")]) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "r").exists()
