"""spikeyolo detect on event recordings: windows of events become frames, written as one video."""
import json

import cv2
import numpy as np
import pytest

from spikeyolo.cli import main
from spikeyolo.detect.sources import EventSource
from spikeyolo.events import EventSimulator, Events, write_events
from tests.detect.test_detect_cli import weights  # noqa: F401  (fixture)


def _moving_square(frames=30, frame_us=5_000):
    sim = EventSimulator(96, 64, seed=1)
    parts = []
    for i in range(frames):
        image = np.full((64, 96), 40, np.uint8)
        image[20:40, 10 + 2 * i: 30 + 2 * i] = 220
        parts.append(sim(image, i * frame_us))
    return Events.concat(parts, 96, 64)


@pytest.mark.parametrize("suffix", [".aedat4", ".h5"])
def test_detect_writes_one_frame_per_window(suffix, weights, tmp_path):  # noqa: F811
    events = _moving_square()
    recording = write_events(tmp_path / f"rec{suffix}", events)
    source = EventSource(recording, {"window_us": 40_000})
    frames = list(source)
    assert len(frames) == len(source) and source.fps == 100.0
    assert all(f.image.shape == (64, 96, 3) for f in frames) and frames[-1].image.max() > 0
    assert main(["detect", str(recording), "--weights", str(weights), "--project", str(tmp_path / "out"),
                 "--timesteps", "2"]) == 0
    lines = (tmp_path / "out/exp/predictions.jsonl").read_text().splitlines()
    video = cv2.VideoCapture(str(tmp_path / "out/exp/rec.mp4"))
    assert len(lines) == len(EventSource(recording)) == video.get(cv2.CAP_PROP_FRAME_COUNT)
    assert json.loads(lines[0])["frame"] == 0


def test_event_frames_hold_every_event_of_their_window(tmp_path):
    events = _moving_square()
    source = EventSource(write_events(tmp_path / "rec.npz", events), {"window_us": 20_000, "clip": 255})
    frames = list(source)  # stride = window / 4 = 5 ms; clip 255: the "all events" channel counts exactly
    for k, frame in enumerate(frames):
        end = events.t[0] + (k + 1) * 5_000
        assert frame.image[..., 2].sum() == np.count_nonzero((events.t >= end - 20_000) & (events.t < end))
    assert events.t[0] + len(frames) * 5_000 > events.t[-1]  # the last window reaches past the last event
