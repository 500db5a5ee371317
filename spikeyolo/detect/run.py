"""`spikeyolo detect` as a Python API: frames in, annotated frames and JSON lines out."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spikeyolo.detect.predictor import Detector
from spikeyolo.detect.sources import open_source
from spikeyolo.detect.writers import DetectionWriter
from spikeyolo.ultra import draw_detections

LOGGER = logging.getLogger("spikeyolo.detect")


@dataclass
class DetectSummary:
    """What a detection run did."""
    frames: int
    detections: int
    seconds: float
    outputs: list[Path]
    mode: str
    skipped: list[str] = field(default_factory=list)
    broken_video: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _writer_for(source, folder: Path) -> DetectionWriter:
    if source.is_video:
        stem = Path(source.name).stem if not source.name.startswith("camera") else source.name.replace(" ", "")
        return DetectionWriter(folder, source.fps, f"{stem or 'stream'}.mp4")
    return DetectionWriter(folder)


def detect(source: str, folder: Path, detector: Detector, every_step: bool = False) -> DetectSummary:
    """Run ``detector`` over every frame of ``source``; outputs go to ``folder`` (which must exist).

    ``every_step`` (SNN only) also writes each frame's detections after every step t = 1 … T.
    """
    if every_step and detector.ann:
        raise ValueError("detections per step need the SNN: the ANN has no timesteps")
    frames = open_source(source, detector.event_input)
    writer = _writer_for(frames, folder)
    total, start = 0, time.perf_counter()
    timesteps = None if detector.ann else detector.timesteps
    try:
        bar = tqdm(frames, total=len(frames) or None, desc=f"detect {detector.mode}", unit="frame")
        for frame in bar:
            steps = detector.steps([frame.image])[0] if every_step else None
            det = steps[-1] if every_step else detector([frame.image])[0]
            rows = torch.from_numpy(np.concatenate([det.boxes, det.scores[:, None], det.classes[:, None]], 1)).float()
            writer.write(draw_detections(frame.image, rows, detector.names, frame.name), det, detector.names,
                         frame.name, frame.index, detector.mode, timesteps, steps)
            total += len(det.scores)
            bar.set_postfix(fps=f"{writer.frames / (time.perf_counter() - start):.1f}")
    except BaseException:
        writer.abort()
        raise
    outputs = writer.close()
    broken = getattr(frames, "broken", False)
    if broken:
        LOGGER.warning(f"{source} broke off after {frames.read_frames} of {frames.expected} frames: "
                       f"the frames read were processed and saved")
    return DetectSummary(writer.frames, total, time.perf_counter() - start, outputs, detector.mode,
                         getattr(frames, "skipped", []), broken)
