"""`spikeyolo webcam`: a live window (or, headless, a video) with boxes, FPS, T and spike activity.

Keys: ``+``/``=`` doubles T, ``-`` halves it, ``a`` toggles the ANN side by side, ``q`` or Esc quits.
Built only on spikeyolo's public API: Detector, open_source and the event input.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from spikeyolo.demo.overlay import heads_up, with_strip
from spikeyolo.detect.predictor import Detector
from spikeyolo.detect.sources import open_source
from spikeyolo.atomic import AtomicFile, atomic_path
from spikeyolo.detect.writers import finish_video
from spikeyolo.events.live import FrameToEvents
from spikeyolo.ultra import draw_detections

KEY_HELP = "keys: +/- T, a ANN side by side, q quit"
MAX_TIMESTEPS = 256


@dataclass
class LiveSummary:
    frames: int
    seconds: float
    output: Path | None
    timesteps: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class LiveDemo:
    """Frames from ``source`` through the SNN (and optionally the ANN beside it), drawn with their activity."""

    def __init__(self, source: str = "0", weights: str | Path | None = None, timesteps: int = 4,
                 events: bool = False, side_by_side: bool = False, conf: float = 0.25, imgsz: int | None = None,
                 device: str = "auto", precision: str = "fp32", stream=None, compile: bool = False):
        self.source = open_source(source)
        self.snn = Detector(weights, timesteps, conf=conf, imgsz=imgsz, device=device, events=events,
                            precision=precision, stream=stream, compile=compile)
        self.snn.record_spikes = True
        self.ann: Detector | None = None
        self.weights, self.conf, self.imgsz, self.device = self.snn.weights, conf, imgsz, device
        self.events = FrameToEvents(getattr(self.source, "fps", 30.0), self.snn.event_input) if events else None
        self.latency: dict[str, float] = {}
        if side_by_side:
            self.toggle_ann()

    @property
    def timesteps(self) -> int:
        return self.snn.timesteps

    def set_timesteps(self, timesteps: int) -> None:
        self.snn.timesteps = int(min(max(timesteps, 1), MAX_TIMESTEPS))

    def toggle_ann(self) -> None:
        """Show or hide the ANN beside the SNN (the ANN is the same weights run as a quantized network)."""
        if self.ann is None:
            self.ann = Detector(self.weights, ann=True, conf=self.conf, imgsz=self.imgsz, device=self.device)
        else:
            self.ann = None

    def _panel(self, detector: Detector, image: np.ndarray, key: str) -> np.ndarray:
        start = time.perf_counter()
        found = detector([image])[0]
        seconds = time.perf_counter() - start
        self.latency[key] = seconds if key not in self.latency else 0.8 * self.latency[key] + 0.2 * seconds
        rows = torch.from_numpy(np.concatenate([found.boxes, found.scores[:, None], found.classes[:, None]], 1))
        panel = draw_detections(image, rows.float(), detector.names, key)
        heads_up(panel, [f"{detector.mode}  {1.0 / self.latency[key]:.1f} FPS", f"{len(found.scores)} objects"])
        rates = list(detector.firing_rates().values())
        return with_strip(panel, rates)

    def render(self, frame: np.ndarray) -> np.ndarray:
        """One annotated output frame: the SNN panel, and the ANN panel beside it when toggled on."""
        image = self.events(frame) if self.events is not None else frame
        panels = [self._panel(self.snn, image, "SNN")]
        if self.ann is not None:
            panels.append(self._panel(self.ann, image, "ANN"))
        note = "input: events simulated from the frames" if self.events is not None else KEY_HELP
        return heads_up(np.hstack(panels), ["", "", note])

    def handle_key(self, key: int) -> bool:
        """Apply a key press; False means quit."""
        if key in (ord("q"), 27):
            return False
        if key in (ord("+"), ord("=")):
            self.set_timesteps(self.timesteps * 2)
        elif key == ord("-"):
            self.set_timesteps(self.timesteps // 2)
        elif key == ord("a"):
            self.toggle_ann()
        return True

    def run(self, headless: bool = False, output: str | Path | None = None, max_frames: int | None = None,
            screenshot: str | Path | None = None, on_frame=None) -> LiveSummary:
        """Show the live window, or (headless) write every rendered frame to ``output`` (.mp4); ``on_frame()`` after
        each frame (a progress bar)."""
        if headless and output is None:
            raise ValueError("headless mode needs an output video path")
        video = AtomicFile(Path(output)) if output else None
        writer, frames, last, start = None, 0, None, time.perf_counter()
        try:
            for frame in self.source:
                rendered = self.render(frame.image)
                if video is not None:
                    if writer is None:
                        fps = getattr(self.source, "fps", 25.0)
                        writer = cv2.VideoWriter(str(video.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                                 (rendered.shape[1], rendered.shape[0]))
                    writer.write(rendered)
                last, frames = rendered, frames + 1
                if on_frame is not None:
                    on_frame()
                if not headless:
                    cv2.imshow("spikeyolo", rendered)
                    if not self.handle_key(cv2.waitKey(1) & 0xFF):
                        break
                if max_frames and frames >= max_frames:
                    break
        except BaseException:
            if writer is not None:
                writer.release()
            if video is not None:
                video.abort()
            raise
        finally:
            if not headless:
                cv2.destroyAllWindows()
        if writer is not None:
            finish_video(writer, video, frames)
        if screenshot is not None and last is not None:
            with atomic_path(screenshot) as tmp:
                cv2.imwrite(str(tmp), last)
        return LiveSummary(frames, time.perf_counter() - start, video.final if video else None, self.timesteps)
