"""The DVS simulator: silence for a static scene, the right polarity and count for brightness changes."""
import numpy as np
import pytest

from spikeyolo.events import EventSimulator


def _scene(value=100, patch=None):
    frame = np.full((24, 32), value, np.uint8)
    if patch is not None:
        frame[4:10, 6:14] = patch
    return frame


def test_static_scene_gives_no_events():
    sim = EventSimulator(32, 24, threshold_sigma=0.05, seed=3)
    frame = np.random.default_rng(0).integers(0, 255, (24, 32), dtype=np.uint8)
    assert len(sim(frame, 0)) == 0
    assert all(len(sim(frame, t)) == 0 for t in range(1000, 20000, 1000))


@pytest.mark.parametrize("after,sign", [(200, 1), (40, -1)])
def test_patch_change_gives_events_of_its_polarity_only_there(after, sign):
    sim = EventSimulator(32, 24, threshold_on=0.2, threshold_off=0.2, threshold_sigma=0.0)
    sim(_scene(patch=100), 0)
    events = sim(_scene(patch=after), 1000)
    assert len(events) > 0 and set(events.p.tolist()) == {sign}
    assert events.x.min() >= 6 and events.x.max() < 14 and events.y.min() >= 4 and events.y.max() < 10
    crossings = int(np.floor(abs(np.log(after + 1.0) - np.log(101.0)) / 0.2))
    assert len(events) == crossings * 6 * 8  # every crossing of every patch pixel, once
    assert np.all(np.diff(events.t) >= 0) and events.t.min() > 0 and events.t.max() <= 1000


def test_crossing_times_follow_the_linear_change():
    sim = EventSimulator(1, 1, threshold_on=0.1, threshold_off=0.1, threshold_sigma=0.0)
    sim(np.full((1, 1), 99, np.uint8), 0)          # log(100)
    events = sim(np.full((1, 1), 199, np.uint8), 1000)  # log(200): 6 crossings of 0.1 over ln 2 = 0.693
    expected = np.round(np.arange(1, 7) * 0.1 / np.log(2.0) * 1000).astype(np.int64)
    np.testing.assert_array_equal(events.t, expected)


def test_refractory_period_drops_close_events():
    free = EventSimulator(1, 1, threshold_on=0.1, threshold_off=0.1, threshold_sigma=0.0)
    slow = EventSimulator(1, 1, threshold_on=0.1, threshold_off=0.1, threshold_sigma=0.0, refractory_us=300)
    for sim in (free, slow):
        sim(np.full((1, 1), 99, np.uint8), 0)
    assert len(free(np.full((1, 1), 199, np.uint8), 1000)) == 6
    kept = slow(np.full((1, 1), 199, np.uint8), 1000)
    assert 1 < len(kept) < 6 and np.all(np.diff(kept.t) >= 300)


def test_frames_must_move_forward_in_time():
    sim = EventSimulator(4, 4)
    sim(np.zeros((4, 4), np.uint8), 10)
    with pytest.raises(ValueError, match="not after"):
        sim(np.zeros((4, 4), np.uint8), 10)
