"""A DVS simulator: the standard log-intensity-change pixel model (as in ESIM and v2e).

Each pixel remembers a reference log intensity. When the log intensity has moved by its contrast
threshold C+ (up) or C- (down) since the reference, the pixel emits an ON / OFF event and the
reference moves by one threshold. Between two frames the log intensity is taken to change linearly,
so each crossing gets its own timestamp. Thresholds vary per pixel (Gaussian mismatch, fixed by a
seed), and after an event a pixel stays silent for ``refractory_us`` (crossings in that time are lost,
the reference still follows them, as the pixel resets to the current level).
"""
from __future__ import annotations

import cv2
import numpy as np

from spikeyolo.events.stream import Events


def log_intensity(frame: np.ndarray, eps: float = 1.0) -> np.ndarray:
    """log(I + eps) of a BGR or gray 8-bit frame (eps keeps dark pixels from dominating)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return np.log(gray.astype(np.float32) + eps)


class EventSimulator:
    """Feed frames with timestamps (µs) in order; each call returns the events since the last frame."""

    def __init__(self, width: int, height: int, threshold_on: float = 0.2, threshold_off: float = 0.2,
                 threshold_sigma: float = 0.02, refractory_us: int = 0, seed: int = 0):
        if threshold_on <= 0 or threshold_off <= 0:
            raise ValueError("contrast thresholds must be > 0")
        rng = np.random.default_rng(seed)
        shape = (height, width)
        self.width, self.height, self.refractory_us = width, height, int(refractory_us)
        self.threshold_on = np.clip(rng.normal(threshold_on, threshold_sigma, shape), 0.01, None).astype(np.float32)
        self.threshold_off = np.clip(rng.normal(threshold_off, threshold_sigma, shape), 0.01, None).astype(np.float32)
        self.reference = None
        self.previous = None
        self.last_time = None
        self.last_event = np.full(shape, np.iinfo(np.int64).min // 2, dtype=np.int64)

    def __call__(self, frame: np.ndarray, time_us: int) -> Events:
        level = log_intensity(frame)
        if level.shape != (self.height, self.width):
            raise ValueError(f"frame is {level.shape[1]}x{level.shape[0]}, the sensor {self.width}x{self.height}")
        if self.reference is None:
            self.reference, self.previous, self.last_time = level.copy(), level, int(time_us)
            return Events.empty(self.width, self.height)
        if time_us <= self.last_time:
            raise ValueError(f"frame time {time_us} µs is not after the previous frame's {self.last_time} µs")
        events = self._crossings(level, int(time_us))
        self.previous, self.last_time = level, int(time_us)
        return events

    def _crossings(self, level: np.ndarray, time_us: int) -> Events:
        """Events of every threshold crossing between the previous frame and this one."""
        change = level - self.reference
        count_on = np.floor(np.maximum(change, 0) / self.threshold_on).astype(np.int32)
        count_off = np.floor(np.maximum(-change, 0) / self.threshold_off).astype(np.int32)
        parts = []
        for count, step, sign in ((count_on, self.threshold_on, 1), (count_off, -self.threshold_off, -1)):
            ys, xs = np.nonzero(count)
            if len(ys) == 0:
                continue
            parts.append(self._timed(ys, xs, count[ys, xs], step[ys, xs], sign, level, time_us))
            self.reference[ys, xs] += count[ys, xs] * step[ys, xs]
        if not parts:
            return Events.empty(self.width, self.height)
        t, x, y, p = (np.concatenate(v) for v in zip(*parts))
        order = np.argsort(t, kind="stable")
        return Events(t[order], x[order], y[order], p[order], self.width, self.height)

    def _timed(self, ys, xs, counts, steps, sign, level, time_us):
        """Timestamps of the k-th crossing (k = 1..count) by linear interpolation, refractory applied."""
        start, end = self.previous[ys, xs], level[ys, xs]
        span = np.where(np.abs(end - start) > 1e-9, end - start, 1e-9)
        duration = time_us - self.last_time
        out_t, out_x, out_y = [], [], []
        for k in range(1, int(counts.max()) + 1):
            live = counts >= k
            crossing = self.reference[ys[live], xs[live]] + k * steps[live]
            fraction = np.clip((crossing - start[live]) / span[live], 0.0, 1.0)
            t = self.last_time + np.round(fraction * duration).astype(np.int64)
            py, px = ys[live], xs[live]
            ready = t - self.last_event[py, px] >= self.refractory_us
            self.last_event[py[ready], px[ready]] = t[ready]
            out_t.append(t[ready])
            out_x.append(px[ready])
            out_y.append(py[ready])
        t = np.concatenate(out_t)
        return t, np.concatenate(out_x), np.concatenate(out_y), np.full(len(t), sign, dtype=np.int8)
