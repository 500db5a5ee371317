"""Drawing for the live demo: the heads-up line and the firing-rate bar strip."""
from __future__ import annotations

import cv2
import numpy as np

STRIP_HEIGHT = 56


def heads_up(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """Text lines in the top-left corner on a dark band (an empty string leaves its row free)."""
    for row, text in enumerate(lines):
        if not text:
            continue
        y = 18 + 20 * row
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(frame, (4, y - h - 4), (10 + w, y + 5), (0, 0, 0), -1)
        cv2.putText(frame, text, (7, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def firing_strip(width: int, rates: list[float], scale: float = 1.0) -> np.ndarray:
    """A STRIP_HEIGHT×width band: one bar per spiking layer (input to head), height = rate / ``scale``."""
    strip = np.full((STRIP_HEIGHT, width, 3), 24, dtype=np.uint8)
    label = f"spikes per neuron per step, per layer (mean {np.mean(rates):.3f})" if rates else "ANN: no spikes"
    cv2.putText(strip, label, (6, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (220, 220, 220), 1, cv2.LINE_AA)
    if not rates:
        return strip
    top, bottom = 20, STRIP_HEIGHT - 3
    bar = max((width - 12) / len(rates), 1.0)
    for i, rate in enumerate(rates):
        height = int(round(min(rate / scale, 1.0) * (bottom - top)))
        x1 = int(6 + i * bar)
        x2 = max(int(6 + (i + 1) * bar) - 1, x1 + 1)
        color = (60, 200, 255) if rate < scale else (60, 60, 255)
        cv2.rectangle(strip, (x1, bottom - height), (x2, bottom), color, -1)
    return strip


def with_strip(frame: np.ndarray, rates: list[float]) -> np.ndarray:
    """The frame with the firing-rate strip below it."""
    return np.vstack([frame, firing_strip(frame.shape[1], rates)])
