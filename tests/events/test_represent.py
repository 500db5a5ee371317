"""Event histograms, voxel grids, 8-bit event frames and time windows."""
import numpy as np

from spikeyolo.events import Events, event_frame, event_histogram, time_windows, voxel_grid


def _events():
    return Events([0, 10, 20, 30, 40], [1, 1, 2, 3, 3], [0, 0, 1, 2, 2], [1, 1, -1, 1, -1], 4, 3)


def test_histogram_counts_per_polarity():
    hist = event_histogram(_events())
    assert hist.shape == (2, 3, 4) and hist[0, 0, 1] == 2 and hist[1, 1, 2] == 1
    assert hist[0, 2, 3] == 1 and hist[1, 2, 3] == 1 and hist.sum() == 5


def test_voxel_grid_keeps_the_net_polarity_and_splits_time():
    grid = voxel_grid(_events(), bins=3)
    assert grid.shape == (3, 3, 4)
    np.testing.assert_allclose(grid.sum(0), event_histogram(_events())[0] - event_histogram(_events())[1])
    assert grid[0, 0, 1] == 1.5 and grid[1, 0, 1] == 0.5  # t = 0 and t = 10 of a 0..40 window


def test_event_frame_clips_and_scales():
    frame = event_frame(_events(), clip=2)
    assert frame.dtype == np.uint8 and frame.shape == (3, 4, 3)
    assert tuple(frame[0, 1]) == (255, 0, 255) and tuple(frame[2, 3]) == (128, 128, 255)


def test_windows_cover_the_recording():
    windows = list(time_windows(_events(), window_us=20, stride_us=10))
    assert [end for end, _ in windows] == [20, 30, 40, 50]  # the last is the first to end after t = 40
    assert [len(w) for _, w in windows] == [2, 2, 2, 2]
