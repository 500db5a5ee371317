"""Event frames from a stream of ordinary frames (webcam, video): the simulator over a sliding window."""
from __future__ import annotations

import cv2
import numpy as np

from spikeyolo.events.represent import event_frame
from spikeyolo.events.simulate import EventSimulator
from spikeyolo.events.stream import Events

DEFAULT_EVENT_INPUT = {"sensor": [320, 240], "window_us": 100_000, "clip": 4, "threshold": 0.12,
                       "threshold_sigma": 0.02, "refractory_us": 1_000}  # as the shipped event model's data


class FrameToEvents:
    """Each call takes the next frame and returns the event frame of the last ``window_us`` of events."""

    def __init__(self, fps: float, event_input: dict | None = None, seed: int = 0):
        settings = {**DEFAULT_EVENT_INPUT, **(event_input or {})}
        self.width, self.height = settings["sensor"]
        self.window_us, self.clip = int(settings["window_us"]), int(settings["clip"])
        self.frame_us = int(round(1e6 / (fps if fps > 0 else 30.0)))
        self.simulator = EventSimulator(self.width, self.height, settings["threshold"], settings["threshold"],
                                        settings["threshold_sigma"], settings["refractory_us"], seed)
        self.recent: list[Events] = []
        self.count = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        now = self.count * self.frame_us
        self.count += 1
        sensor_view = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        events = self.simulator(sensor_view, now)
        self.recent = [e for e in self.recent if len(e) and e.t[-1] >= now - self.window_us] + [events]
        window = Events.concat(self.recent, self.width, self.height).between(now - self.window_us, now + 1)
        return event_frame(window, self.clip)
