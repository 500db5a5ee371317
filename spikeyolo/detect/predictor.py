"""Detection on frames with the ANN or its SNN: letterbox, run, NMS, boxes back in frame pixels."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikeyolo.checkpoint import CheckpointError
from spikeyolo.convert.load import load_model, read_weights
from spikeyolo.data.images import load_image, to_bgr8
from spikeyolo.device import timed, torch_device
from spikeyolo.engine import default_backend
from spikeyolo.engine.runner import check_precision, reduced_precision
from spikeyolo.detections import Detections
from spikeyolo.limits import image_size
from spikeyolo.resources import resource
from spikeyolo.ultra import letterbox_batch, non_max_suppression, scale_to_frame

COCO_WEIGHTS = resource("weights/coco80-yolov5n-qcfs.safetensors")  # COCO's 80 everyday classes
BCCD_WEIGHTS = resource("weights/bccd-yolov8n-qcfs.safetensors")  # blood cells (the benchmarks' model)
DEFAULT_WEIGHTS = COCO_WEIGHTS  # frames of every kind: photos, videos, cameras, streams
DEFAULT_EVENT_WEIGHTS = resource("weights/bccd-events-yolov8n-qcfs.safetensors")  # event recordings, --events


def _check_weights(path: Path) -> None:
    if path.suffix == ".pt":
        raise CheckpointError(f"{path} is a pickle checkpoint and is not loaded implicitly: convert it once with "
                              f"'spikeyolo import {path}' (only for files you trust)")
    if not path.is_file():
        raise CheckpointError(f"weights {path} not found: pass a .safetensors file written by spikeyolo")


@dataclass(frozen=True)
class StreamPolicy:
    """A streaming SNN: every frame adds ``timesteps`` steps to the same membranes instead of starting from reset
    ones, and the detections are the head's running output since the last reset. It starts again from reset
    membranes every ``reset_every`` frames (0: never) and, with ``scene_cut`` > 0, on a frame whose mean absolute
    difference from the previous one (pixels in [0, 1], after the letterbox) exceeds it; a new image size too."""
    reset_every: int = 0
    scene_cut: float = 0.0

    def __post_init__(self):
        if self.reset_every < 0:
            raise ValueError(f"reset_every must be >= 0 (0: never), got {self.reset_every}")
        if not 0.0 <= self.scene_cut <= 1.0:
            raise ValueError(f"scene_cut must be in [0, 1] (0: off), got {self.scene_cut}")

    def describe(self) -> str:
        parts = [f"reset every {self.reset_every} frames" if self.reset_every else "never reset"]
        if self.scene_cut:
            parts.append(f"and on scene cuts (mean change > {self.scene_cut:g})")
        return "stream, " + " ".join(parts)


class StageTimer:
    """Wall time per stage (``spikeyolo.device.timed``) and the frames they were spent on."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self.frames = device, {}, 0

    def __call__(self, stage: str):
        return timed(self.seconds, stage, self.device)

    def per_frame_ms(self) -> dict[str, float]:
        return {stage: 1e3 * seconds / max(self.frames, 1) for stage, seconds in self.seconds.items()}


class Detector:
    """Runs the ANN (``ann=True``) or the SNN for ``timesteps`` steps on batches of BGR frames; ``timer`` holds the
    time of each stage (preprocess, model, NMS), ``warmup()`` runs it once untimed (a Triton compile, first
    allocations) as ultralytics' predictor does."""

    def __init__(self, weights: str | Path | None = None, timesteps: int = 4, ann: bool = False, conf: float = 0.25,
                 iou: float = 0.7, imgsz: int | None = None, device: str = "auto", backend: str | None = None,
                 burst: int | None = None, events: bool = False, snm: bool = False, precision: str = "fp32",
                 stream: StreamPolicy | None = None, compile: bool = False, max_det: int = 300,
                 classes: list[int] | None = None):
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        for name, value in (("conf", conf), ("iou", iou)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.weights = Path(weights) if weights else DEFAULT_EVENT_WEIGHTS if events else DEFAULT_WEIGHTS
        _check_weights(self.weights)
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        if imgsz is not None:
            image_size(imgsz, "Detector")
        if max_det < 1:
            raise ValueError(f"max_det must be >= 1, got {max_det}")
        self.timesteps, self.ann, self.conf, self.iou, self.burst = timesteps, ann, conf, iou, burst
        self.max_det, self.classes = max_det, list(classes) if classes is not None else None
        self.snm = snm
        self.device = torch_device(device)
        self.meta: dict = {}
        self.neurons = ""  # which neurons run, in words (SNN only)
        self.record_spikes = False  # set True to read firing_rates() after each call
        self.precision = check_precision(precision)  # convolutions of the SNN, or of the ANN with ann=True
        self.model, self.names, self.imgsz = self._load(imgsz, backend or default_backend(self.device))
        if stream is not None and self.ann:
            raise ValueError("streaming carries membranes from frame to frame: it needs the SNN, not the ANN")
        self.stream, self.resets = stream, 0  # resets: how often a stream started again (the first frame counts)
        self._previous: torch.Tensor | None = None  # the last frame of a stream (scene cuts), None: reset next
        self._since_reset = 0
        if not self.ann:
            self.model.set_precision(precision)
            if compile:
                self.model.compile()
        self.timer = StageTimer(self.device)

    def warmup(self) -> None:
        """One untimed run on a blank frame: compiles and allocates what the first real frame would pay for."""
        blank = [np.zeros((self.imgsz, self.imgsz, 3), dtype=np.uint8)]
        for _ in range(2 if not self.ann and self.model.compiled else 1):  # eager (allocates), then the compile
            self(blank)
        self.timer, self._previous, self.resets = StageTimer(self.device), None, 0

    def _load(self, imgsz, backend):
        weights = read_weights(self.weights)
        if not self.ann and not weights.is_snn and not weights.levels:
            raise CheckpointError(f"{self.weights} is not QCFS-trained: run 'spikeyolo convert --mode channel --calib "
                                  f"DATA' first, or detect with --ann")
        loaded = load_model(weights, self.device, ann=self.ann, snn=not self.ann, burst=self.burst, snm=self.snm,
                            imgsz=imgsz, backend=backend)
        self.meta = weights.source
        if self.ann:  # channels-last, as the SNN runs: the faster layout for oneDNN and cuDNN
            return loaded.ann.to(memory_format=torch.channels_last), loaded.ann.names, loaded.settings["imgsz"]
        self.burst, self.snm = loaded.settings["burst"], loaded.settings["snm"]
        self.neurons = loaded.settings["neurons"]
        return loaded.snn, loaded.snn.names, loaded.settings["imgsz"]

    @property
    def mode(self) -> str:
        precision = f" {self.precision}" if self.precision != "fp32" else ""
        if self.ann:
            return "ANN" + precision
        burst = f" burst≤{self.burst}" if self.burst and self.burst > 1 else ""
        stream = f" ({self.stream.describe()})" if self.stream else ""
        return f"SNN T={self.timesteps}" + burst + (" SNM" if self.snm else "") + precision + stream

    @property
    def event_input(self) -> dict | None:
        """How the weights' training data turned events into frames (window_us, clip), if event-trained."""
        return self.meta.get("events")

    def firing_rates(self) -> dict[str, float]:
        """Firing rate per spiking layer over the last call (empty for the ANN)."""
        return {} if self.ann else self.model.firing_rates()

    def __call__(self, frames) -> list[Detections]:
        """Detections of each frame (for the SNN: after all ``timesteps`` steps). ``frames``: one BGR image
        (H×W×3 uint8 array, or a gray H×W one), a list of them, or an image file's path."""
        frames = as_frames(frames)
        out, shape = self._forward(frames, every_step=False)
        return self._detections(out[-1], shape, frames)

    def steps(self, frames) -> list[list[Detections]]:
        """SNN only: the detections of each frame after every step, ``[frame][t - 1]`` for t = 1 … T, read
        from one run (the head's running output is decoded at every step). ``frames`` as for a call."""
        if self.ann:
            raise ValueError("detections per step need the SNN: the ANN has no timesteps")
        frames = as_frames(frames)
        out, shape = self._forward(frames, every_step=True)
        per_step = [self._detections(step, shape, frames) for step in out]
        return [list(frame) for frame in zip(*per_step)]

    @torch.no_grad()
    def _forward(self, frames: list[np.ndarray], every_step: bool) -> tuple[torch.Tensor, torch.Size]:
        """Raw predictions ``[S, N, 4 + nc, anchors]`` (S = 1, or T with ``every_step``) and the input size."""
        self.timer.frames += len(frames)
        with self.timer("preprocess"):
            batch = letterbox_batch(frames, self.imgsz).to(self.device)
        with self.timer("model"):
            if self.ann:
                with reduced_precision(self.device, self.precision):
                    out = self.model(batch.contiguous(memory_format=torch.channels_last))
                return (out[0] if isinstance(out, (tuple, list)) else out).float()[None], batch.shape[2:]
            self.model.record(self.record_spikes)
            out = self.model(batch, self.timesteps, reset=self._starts_again(batch))
        return (out if every_step else out[-1:]), batch.shape[2:]

    def _starts_again(self, batch: torch.Tensor) -> bool:
        """Whether this call starts from reset membranes: always without a stream; in a stream by its policy."""
        if self.stream is None:
            return True
        if batch.shape[0] != 1:
            raise ValueError(f"a stream runs one frame at a time through one network, got a batch of {batch.shape[0]}")
        policy, previous = self.stream, self._previous
        cut = previous is None or previous.shape != batch.shape or (
            policy.scene_cut > 0 and (batch - previous).abs().mean().item() > policy.scene_cut)
        reset = cut or (policy.reset_every > 0 and self._since_reset >= policy.reset_every)
        self._previous, self._since_reset = batch, 1 if reset else self._since_reset + 1
        self.resets += reset
        return reset

    def _detections(self, out: torch.Tensor, shape: torch.Size, frames: list[np.ndarray]) -> list[Detections]:
        """NMS on one step's raw predictions, boxes back in frame pixels."""
        results = []
        with self.timer("nms"):
            for rows, frame in zip(non_max_suppression(out, self.conf, self.iou, self.max_det, self.classes), frames):
                boxes = scale_to_frame(rows[:, :4], shape, frame.shape)
                results.append(Detections(boxes.cpu().numpy(), rows[:, 4].cpu().numpy(), rows[:, 5].cpu().numpy()))
        return results


def as_frames(frames) -> list[np.ndarray]:
    """A list of 8-bit BGR frames from one image array, a list of them, or an image file's path (a ValueError
    naming what was passed otherwise)."""
    if isinstance(frames, (str, Path)):
        image = load_image(Path(frames)) if Path(frames).is_file() else None
        if image is None:
            raise ValueError(f"cannot read image {frames}: pass an image file (folders and videos: SpikingYOLO)")
        return [image]
    if isinstance(frames, np.ndarray):
        if frames.ndim == 4:  # a batch N×H×W×3
            return [to_bgr8(frame) for frame in frames]
        frames = [frames]
    listed = list(frames)
    for frame in listed:
        if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or (frame.ndim == 3 and
                                                                           frame.shape[2] not in (1, 3, 4)):
            raise ValueError(f"expected H×W×3 BGR images (numpy arrays), got {type(frame).__name__} "
                             f"{getattr(frame, 'shape', '')}")
    return [to_bgr8(frame) for frame in listed]
