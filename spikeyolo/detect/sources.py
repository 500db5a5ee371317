"""Frame sources for detection: an image, a folder, a glob, a video file, a camera index or a stream URL.

Every frame comes out as 8-bit BGR (grayscale, RGBA and 16-bit images are converted). Problems
that make the whole source unusable raise SourceError with one line saying what to do; a bad
image inside a folder is skipped with a warning, a video that breaks off ends early (see
``VideoSource.broken``).

Why not ultralytics' loaders (``LoadImagesAndVideos``, ``LoadStreams``) through ``spikeyolo.ultra``: a bad file
there ends the run instead of being skipped and reported, an unknown image type makes ultralytics try to fetch a
HEIF plugin (a download: refused offline, see ``data.images.decodes_fully``), a video that breaks off is not told
apart from one that ended, and event-camera recordings are not frames at all. These sources keep those cases to
one line each (tested case by case in tests/detect) at the cost of this module.
"""
from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from spikeyolo.data.images import IMAGE_SUFFIXES, decodes_fully, load_image, to_bgr8
from spikeyolo.events import EventError, event_frame, read_events, time_windows
from spikeyolo.events.io import EVENT_SUFFIXES
from spikeyolo.events.live import DEFAULT_EVENT_INPUT
from spikeyolo.limits import MAX_CAMERA_INDEX, MAX_EVENT_WINDOWS

LOGGER = logging.getLogger("spikeyolo.detect")
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpeg", ".mpg", ".wmv", ".webm"}
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "tcp://", "udp://")


class SourceError(ValueError):
    """A detection source that cannot be used."""


@dataclass
class Frame:
    image: np.ndarray   # H×W×3 uint8 BGR
    name: str           # the file, or the stream, it came from
    index: int          # frame number within a video or stream; 0 for images


class ImageSource:
    """Still images; unreadable ones are skipped (counted) unless the source is a single file."""
    is_video = False

    def __init__(self, files: list[Path], single: bool):
        self.files, self.single, self.skipped = files, single, []
        if single and not decodes_fully(files[0]):
            raise SourceError(f"cannot read image {files[0]}: the file is truncated or not an image; "
                              f"pass a readable image")

    def __len__(self):
        return len(self.files)

    def __iter__(self):
        for path in self.files:
            image = load_image(path)
            if image is None:
                if self.single:
                    raise SourceError(f"cannot read image {path}: the file is truncated or not an image; "
                                      f"pass a readable image")
                LOGGER.warning(f"skipped unreadable image {path}")
                self.skipped.append(str(path))
                continue
            yield Frame(image, str(path), 0)
        if self.skipped and len(self.skipped) == len(self.files):
            raise SourceError(f"none of the {len(self.files)} image(s) could be read (e.g. {self.skipped[0]}): they "
                              "are truncated or not images")


def _opened(target: str | int) -> cv2.VideoCapture:
    """``cv2.VideoCapture(target)`` with OpenCV's own C++ log silenced while it tries its backends (a missing camera
    prints several [ WARN]/[ERROR] lines from each; the one clear error is ours)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(target)
    finally:
        cv2.utils.logging.setLogLevel(level)


class VideoSource:
    """A video file, camera or stream; ``broken`` is set if reading stopped before the announced end."""
    is_video = True

    def __init__(self, target: str | int, name: str):
        self.capture = _opened(target)
        self.name = name
        if not self.capture.isOpened():
            what = f"{name}: check that it is connected and not in use by another program" if isinstance(target, int) \
                else f"video or stream {name}: check that it exists and is a readable video"
            raise SourceError(f"cannot open {what}")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.fps = self.fps if 0 < self.fps < 1000 else 25.0
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.expected = count if count > 0 and not isinstance(target, int) else None
        self.read_frames = 0
        self.broken = False

    def __len__(self):
        return self.expected or 0

    def __iter__(self):
        try:
            while True:
                ok, image = self.capture.read()
                if not ok or image is None:
                    break
                yield Frame(to_bgr8(image), self.name, self.read_frames)
                self.read_frames += 1
        finally:
            self.capture.release()
        if self.expected and self.read_frames < self.expected:
            self.broken = True
        if self.read_frames == 0:
            raise SourceError(f"no frame could be read from {self.name}: the video is empty or corrupt")


class EventSource:
    """An event recording, cut into overlapping time windows, each rendered as the event model's input frame."""
    is_video = True

    def __init__(self, path: Path, event_input: dict | None = None, frames_per_window: int = 4):
        settings = {**DEFAULT_EVENT_INPUT, **(event_input or {})}
        self.window_us, self.clip = int(settings["window_us"]), int(settings["clip"])
        self.stride_us = max(self.window_us // frames_per_window, 1)
        self.fps = 1e6 / self.stride_us
        self.name = str(path)
        try:
            self.events = read_events(path)
        except EventError as err:
            raise SourceError(str(err)) from err
        if len(self.events) == 0:
            raise SourceError(f"{path} holds no events")
        if len(self) > MAX_EVENT_WINDOWS:
            span = int(self.events.t[-1] - self.events.t[0])
            raise SourceError(f"{path}: its events span {span} µs, {len(self)} windows of {self.stride_us} µs (limit "
                              f"{MAX_EVENT_WINDOWS}): the timestamps are corrupt, or cut the recording")

    def __len__(self):
        return int((self.events.t[-1] - self.events.t[0]) // self.stride_us) + 1

    def __iter__(self):
        """Window k ends at first event + (k+1)·stride, up to the first window ending after the last event."""
        start = int(self.events.t[0]) + self.stride_us - self.window_us
        windows = time_windows(self.events, self.window_us, self.stride_us, start)
        for index, (_, window) in enumerate(windows):
            yield Frame(event_frame(window, self.clip), self.name, index)


def _regular(files: list[Path]) -> list[Path]:
    """The regular files among ``files``; the others (pipes, sockets, devices: reading them could block forever)
    are left out with one warning naming them."""
    regular = [f for f in files if f.is_file()]
    if len(regular) < len(files):
        others = [str(f) for f in files if not f.is_file()]
        LOGGER.warning(f"{len(others)} file(s) that are not regular files left out (pipes, sockets or devices): "
                       f"{', '.join(others[:3])}{' …' if len(others) > 3 else ''}")
    return regular


def open_source(source: str, event_input: dict | None = None):
    """The frame source for a command-line SOURCE (event files use ``event_input``'s window and clip)."""
    if source.isdigit():
        if int(source) > MAX_CAMERA_INDEX:
            raise SourceError(f"camera index {source} is out of range: pass 0 to {MAX_CAMERA_INDEX} (the n-th camera)")
        return VideoSource(int(source), f"camera {source}")
    if source.lower().startswith(STREAM_PREFIXES):
        return VideoSource(source, source)
    path = Path(source)
    if any(ch in source for ch in "*?["):
        files = _regular(sorted(Path(p) for p in glob.glob(source, recursive=True)
                                if Path(p).suffix.lower() in IMAGE_SUFFIXES))
        if not files:
            raise SourceError(f"no images match {source}: check the pattern")
        return ImageSource(files, single=False)
    if not path.exists():
        raise SourceError(f"{source} not found: pass an image, a folder, a glob, a video, a camera index or a URL")
    if path.is_dir():
        files = _regular(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not files:
            raise SourceError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageSource(files, single=False)
    if not path.is_file():  # a FIFO, socket or device would block or never end
        raise SourceError(f"{path} is not a regular file (a pipe, socket or device): pass an image, a video, an event "
                          "recording, or a camera by its index")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return ImageSource([path], single=True)
    if suffix in VIDEO_SUFFIXES:
        return VideoSource(str(path), str(path))
    if suffix in EVENT_SUFFIXES:
        return EventSource(path, event_input)
    raise SourceError(f"{path} has an unsupported extension {suffix!r}: use an image "
                      f"({', '.join(sorted(IMAGE_SUFFIXES))}), a video ({', '.join(sorted(VIDEO_SUFFIXES))}) "
                      f"or events ({', '.join(sorted(EVENT_SUFFIXES))})")
