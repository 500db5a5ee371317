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
    stages: dict[str, float] = field(default_factory=dict)  # ms per frame: read, preprocess, model, nms, draw, write
    interrupted: bool = False  # Ctrl-C: the frames processed until then were saved

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _writer_for(source, folder: Path, save_txt: bool) -> DetectionWriter:
    if source.is_video:
        stem = Path(source.name).stem if not source.name.startswith("camera") else source.name.replace(" ", "")
        return DetectionWriter(folder, source.fps, f"{stem or 'stream'}.mp4", save_txt=save_txt)
    return DetectionWriter(folder, save_txt=save_txt)


def _batches(frames, size: int):
    """Consecutive frames in lists of up to ``size`` (the last may be shorter)."""
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run_batches(batches, detector: Detector, writer: DetectionWriter, timer, every_step: bool, bar,
                 start: float, total: list[int]) -> None:
    """Detect, draw and write batch after batch; ``total[0]`` counts the detections written."""
    timesteps = None if detector.ann else detector.timesteps
    while True:
        with timer("read"):
            group = next(batches, None)
        if group is None:
            return
        images = [frame.image for frame in group]
        steps = detector.steps(images) if every_step else None
        found = [s[-1] for s in steps] if every_step else detector(images)
        for i, (frame, det) in enumerate(zip(group, found)):
            with timer("draw"):
                rows = torch.from_numpy(np.concatenate([det.boxes, det.scores[:, None], det.classes[:, None]], 1))
                drawn = draw_detections(frame.image, rows.float(), detector.names, frame.name)
            with timer("write"):
                writer.write(drawn, det, detector.names, frame.name, frame.index, detector.mode, timesteps,
                             steps[i] if every_step else None)
            total[0] += len(det.scores)
        bar.update(len(group))
        bar.set_postfix(fps=f"{writer.frames / (time.perf_counter() - start):.1f}")


def detect(source: str, folder: Path, detector: Detector, every_step: bool = False, batch: int = 1,
           warmup: bool = True, save_txt: bool = False) -> DetectSummary:
    """Run ``detector`` over every frame of ``source``, ``batch`` frames per model call; outputs go to ``folder``
    (which must exist). ``every_step`` (SNN only) also writes each frame's detections after every step t = 1 … T.
    With ``warmup`` the detector runs once untimed first, so compiling and first allocations are not in the FPS.
    The summary's ``stages`` are milliseconds per frame of reading, preprocessing, the model, NMS, drawing and
    writing. ``save_txt`` also writes YOLO-format label files. Ctrl-C (KeyboardInterrupt) ends the run with the
    frames processed until then saved (``interrupted`` in the summary)."""
    if every_step and detector.ann:
        raise ValueError("detections per step need the SNN: the ANN has no timesteps")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if detector.stream is not None and batch != 1:
        raise ValueError("a stream runs frames one at a time, in order, through one network: use batch 1")
    frames = open_source(source, detector.event_input)
    writer = _writer_for(frames, folder, save_txt)
    if warmup:
        detector.warmup()
    timer, start, interrupted = detector.timer, time.perf_counter(), False
    total = [0]
    try:
        with tqdm(total=len(frames) or None, desc=f"detect {detector.mode}", unit="frame") as bar:  # closed on errors
            _run_batches(_batches(frames, batch), detector, writer, timer, every_step, bar, start, total)
    except KeyboardInterrupt:
        interrupted = writer.frames > 0
        if not interrupted:
            writer.abort()
            raise
    except BaseException:
        writer.abort()
        raise
    outputs = writer.close()
    broken = getattr(frames, "broken", False)
    if broken:
        LOGGER.warning(f"{source} broke off after {frames.read_frames} of {frames.expected} frames: "
                       f"the frames read were processed and saved")
    seconds = time.perf_counter() - start
    stages = timer.per_frame_ms()  # the warm-up's frame is not counted: its timer was replaced
    return DetectSummary(writer.frames, total[0], seconds, outputs, detector.mode, getattr(frames, "skipped", []),
                         broken, stages, interrupted)
