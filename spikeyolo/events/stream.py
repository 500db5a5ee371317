"""The event container shared by readers, the simulator and the frame builders."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class EventError(ValueError):
    """An event recording that cannot be read or written; the message says which file and what to do."""


@dataclass
class Events:
    """Events of one sensor, sorted by time: ``t`` in µs (int64), ``x``/``y`` pixels, ``p`` polarity (+1 / -1)."""
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    width: int
    height: int

    def __post_init__(self):
        self.t = np.asarray(self.t, dtype=np.int64)
        self.x = np.asarray(self.x, dtype=np.int16)
        self.y = np.asarray(self.y, dtype=np.int16)
        self.p = np.where(np.asarray(self.p) > 0, 1, -1).astype(np.int8)
        if not len(self.t) == len(self.x) == len(self.y) == len(self.p):
            raise EventError("event fields t, x, y, p differ in length")

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def empty(cls, width: int, height: int) -> Events:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), width, height)

    @classmethod
    def concat(cls, parts: list[Events], width: int, height: int) -> Events:
        if not parts:
            return cls.empty(width, height)
        return cls(*(np.concatenate([getattr(e, f) for e in parts]) for f in "txyp"), width, height)

    def between(self, start_us: int, end_us: int) -> Events:
        """Events with start ≤ t < end (binary search: the events are sorted by time)."""
        lo, hi = np.searchsorted(self.t, [start_us, end_us], side="left")
        return Events(self.t[lo:hi], self.x[lo:hi], self.y[lo:hi], self.p[lo:hi], self.width, self.height)

    def check(self, source: str) -> Events:
        """Raise EventError if coordinates fall outside the sensor or time runs backwards."""
        if len(self) and (self.x.min() < 0 or self.y.min() < 0 or self.x.max() >= self.width
                          or self.y.max() >= self.height):
            raise EventError(f"{source}: event coordinates fall outside the {self.width}x{self.height} sensor; "
                             f"the file is corrupt or its resolution is wrong")
        if len(self) > 1 and np.any(np.diff(self.t) < 0):
            order = np.argsort(self.t, kind="stable")
            self.t, self.x, self.y, self.p = self.t[order], self.x[order], self.y[order], self.p[order]
        return self
