"""``SpikingYOLO``: the Python API a user reaches for first. Any spikeyolo weights in; paths, arrays, lists,
videos and cameras through it; ``Result`` objects out (names, boxes, scores, per-step detections, plot, save, JSON).

    from spikeyolo import SpikingYOLO

    model = SpikingYOLO()                    # the shipped everyday detector (COCO's 80 classes), T = 4
    results = model("image.jpg")             # one Result per image (a folder, a glob, a list, an array, a video)
    results[0].labels, results[0].boxes      # class names and xyxy boxes in image pixels
    results[0].save("out.jpg")
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from spikeyolo.defaults import CONF, IOU, MAX_DET, TIMESTEPS, VAL_TIMESTEPS
from spikeyolo.detect.predictor import Detector, StreamPolicy
from spikeyolo.detect.results import Result
from spikeyolo.detect.sources import Frame, open_source


class SpikingYOLO:
    """A spiking detector loaded from spikeyolo weights: a QCFS checkpoint (converted on load, bursts of up to L
    spikes, equal to the QCFS network from T = 1), an SNN artifact (``convert``/``tune`` output, kept as
    converted), or the shipped model (``weights=None``: the everyday COCO-80 detector; with ``events=True`` the
    shipped event-camera model).

    ``timesteps`` is T; ``burst=1`` asks for binary spikes; ``ann=True`` runs the quantized ANN instead;
    ``stream=StreamPolicy(...)`` (or True) carries the membranes from frame to frame (``docs/engine.md``)."""

    def __init__(self, weights: str | Path | None = None, *, timesteps: int = TIMESTEPS, burst: int | None = None,
                 snm: bool = False, ann: bool = False, conf: float = CONF, iou: float = IOU, max_det: int = MAX_DET,
                 classes: list[int] | None = None, imgsz: int | None = None, device: str = "auto",
                 precision: str = "fp32", stream: StreamPolicy | bool | None = None, compile: bool = False,
                 events: bool = False):
        policy = StreamPolicy() if stream is True else stream or None
        self.detector = Detector(weights, timesteps, ann, conf, iou, imgsz, device, burst=burst, events=events,
                                 snm=snm, precision=precision, stream=policy, compile=compile, max_det=max_det,
                                 classes=classes)

    @property
    def names(self) -> dict[int, str]:
        return dict(self.detector.names)

    @property
    def weights(self) -> Path:
        return self.detector.weights

    @property
    def snn(self):
        """The SpikingDetector underneath (``snn(images, T)``, ``snn.stream``, …), None when running the ANN."""
        return None if self.detector.ann else self.detector.model

    @property
    def timesteps(self) -> int:
        return self.detector.timesteps

    @timesteps.setter
    def timesteps(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"timesteps must be >= 1, got {value}")
        self.detector.timesteps = int(value)

    def __call__(self, source, every_step: bool = False, batch: int = 1) -> list[Result]:
        """One Result per image or frame of ``source``: an image path, a folder, a glob, a video, an event
        recording, a camera index or URL, a BGR array (H×W×3), a PIL image, or a list of these. ``every_step`` keeps
        the detections after every step t = 1 … T (SNN only). A video or camera is read to its end: for long ones
        iterate with ``predict``."""
        return list(self.predict(source, every_step, batch))

    def predict(self, source, every_step: bool = False, batch: int = 1) -> Iterator[Result]:
        """As a call, one Result at a time (frames are read as they are needed: videos, cameras, streams)."""
        if every_step and self.detector.ann:
            raise ValueError("detections per step need the SNN: the ANN has no timesteps")
        if self.detector.stream is not None and batch != 1:
            raise ValueError("a stream runs frames one at a time, in order, through one network: use batch 1")
        group: list[Frame] = []
        for frame in frames_of(source, self.detector.event_input):
            group.append(frame)
            if len(group) == batch:
                yield from self._run(group, every_step)
                group = []
        if group:
            yield from self._run(group, every_step)

    def _run(self, group: list[Frame], every_step: bool) -> list[Result]:
        images = [frame.image for frame in group]
        steps = self.detector.steps(images) if every_step else None
        found = [s[-1] for s in steps] if steps else self.detector(images)
        names, mode = self.names, self.detector.mode
        timesteps = None if self.detector.ann else self.detector.timesteps
        return [Result(frame.image, frame.name, frame.index, names, det, mode, timesteps,
                       steps[i] if steps else None) for i, (frame, det) in enumerate(zip(group, found))]

    def val(self, data: str | Path, timesteps=VAL_TIMESTEPS, **options) -> dict:
        """``spikeyolo val`` on these weights: mAP of the ANN and of the SNN at each T with the cost report (a dict,
        as report.json holds it); ``options`` as ``spikeyolo.eval.validate`` takes them (split, batch, images, …)."""
        from spikeyolo.eval.val import validate

        options.setdefault("device", str(self.detector.device))
        return validate(self.weights, data, timesteps, **options)

    def __repr__(self) -> str:
        return f"SpikingYOLO({self.weights.name}, {self.detector.mode}, {len(self.names)} classes)"


def frames_of(source, event_input: dict | None = None) -> Iterator[Frame]:
    """Frames of any source the API takes (see ``SpikingYOLO.__call__``), each as 8-bit BGR."""
    if isinstance(source, (list, tuple)):
        for item in source:
            yield from frames_of(item, event_input)
        return
    if isinstance(source, (str, Path, int)):  # a file, folder, glob, video, event recording, camera or URL
        yield from open_source(str(source), event_input)
        return
    from spikeyolo.detect.predictor import as_frames

    if type(source).__module__.startswith("PIL."):  # a PIL image is RGB
        source = np.asarray(source.convert("RGB"))[..., ::-1].copy()
    for image in as_frames(source):
        yield Frame(image, "", 0)
