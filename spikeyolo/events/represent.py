"""Events → detector input: per-polarity histograms, voxel grids, and 8-bit event frames over time windows."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from spikeyolo.events.stream import Events


def event_histogram(events: Events) -> np.ndarray:
    """[2, H, W] float32 counts: channel 0 ON events, channel 1 OFF events."""
    hist = np.zeros((2, events.height, events.width), dtype=np.float32)
    channel = (events.p < 0).astype(np.intp)
    np.add.at(hist, (channel, events.y.astype(np.intp), events.x.astype(np.intp)), 1.0)
    return hist


def voxel_grid(events: Events, bins: int, start_us: int | None = None, end_us: int | None = None) -> np.ndarray:
    """[bins, H, W] float32: polarities (±1) spread bilinearly over ``bins`` time bins of the window."""
    grid = np.zeros((bins, events.height, events.width), dtype=np.float32)
    if len(events) == 0:
        return grid
    start = events.t[0] if start_us is None else start_us
    end = events.t[-1] if end_us is None else end_us
    position = (events.t - start) / max(end - start, 1) * (bins - 1)
    lower = np.clip(np.floor(position).astype(np.intp), 0, bins - 1)
    upper = np.clip(lower + 1, 0, bins - 1)
    weight_upper = (position - lower).astype(np.float32)
    y, x, p = events.y.astype(np.intp), events.x.astype(np.intp), events.p.astype(np.float32)
    np.add.at(grid, (lower, y, x), p * (1 - weight_upper))
    np.add.at(grid, (upper, y, x), p * weight_upper)
    return grid


def event_frame(events: Events, clip: int = 4) -> np.ndarray:
    """An H×W×3 uint8 image the detector reads: ON counts, OFF counts and all events, each clipped at ``clip``.

    Channel order is (ON, OFF, all) in OpenCV's BGR slots, so ON events look blue, OFF green, both cyan-white.
    """
    hist = np.minimum(event_histogram(events), clip)
    total = np.minimum(hist.sum(0), clip)
    frame = np.stack([hist[0], hist[1], total], axis=-1) * (255.0 / clip)
    return frame.round().astype(np.uint8)


def time_windows(events: Events, window_us: int, stride_us: int | None = None,
                 start_us: int | None = None) -> Iterator[tuple[int, Events]]:
    """(end, events of [end - window, end)) for windows every ``stride`` µs, the first ending at
    ``start_us`` + window (default: the first event) and the last being the first to end after the last event."""
    if len(events) == 0:
        return
    stride = stride_us or window_us
    end = (int(events.t[0]) if start_us is None else start_us) + window_us
    while True:
        yield int(end), events.between(end - window_us, end)
        if end > events.t[-1]:
            return
        end += stride
