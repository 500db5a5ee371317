"""Outputs of a detection run: annotated images or video and a JSON-lines file, written atomically.

Everything is written under a temporary name and renamed when complete; ``abort()`` removes what
was started, so a failed run leaves no half-written file.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from spikeyolo.atomic import AtomicFile, OutputError
from spikeyolo.detections import Detections
from spikeyolo.detect.results import listed as _listed


class DetectionWriter:
    """Annotated frames (one video, or one image per input image) plus predictions.jsonl."""

    def __init__(self, folder: Path, fps: float | None = None, video_name: str | None = None, save_txt: bool = False):
        self.folder, self.fps = folder, fps
        self.labels: list[Path] | None = [] if save_txt else None  # YOLO-format label files written
        self.video = AtomicFile(folder / video_name) if video_name else None
        self.video_writer = None
        self.jsonl = AtomicFile(folder / "predictions.jsonl")
        self.jsonl_file = open(self.jsonl.tmp, "w")
        self.images: list[Path] = []
        self.names: set[str] = set()  # output image names taken: a.jpg and a.png must not overwrite each other
        self.frames = 0

    def write(self, annotated: np.ndarray, det: Detections, names: dict, source: str, index: int, mode: str,
              timesteps: int | None, steps: list[Detections] | None = None) -> None:
        """One frame: its annotated image, and its JSON line (with ``steps``: the detections after each step)."""
        if self.video is not None:
            if self.video_writer is None:
                h, w = annotated.shape[:2]
                self.video_writer = cv2.VideoWriter(str(self.video.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                                    (w, h))
            self.video_writer.write(annotated)
        else:
            out = AtomicFile(self.folder / self._image_name(Path(source)))
            if not cv2.imwrite(str(out.tmp), annotated):
                out.abort()
                raise OutputError(f"cannot write {out.final} (is the disk full?)")
            self.images.append(out.commit())
        if self.labels is not None:
            self._write_labels(det, annotated.shape, Path(source), index)
        record = _record(det, names, source, index, mode, timesteps)
        if steps is not None:
            record["steps"] = [{"t": t, "detections": _listed(step, names)} for t, step in enumerate(steps, 1)]
        self.jsonl_file.write(json.dumps(record) + "\n")
        self.frames += 1

    def _write_labels(self, det: Detections, shape: tuple, source: Path, index: int) -> None:
        """labels/<image stem>.txt (a video's frame: <stem>_<frame>.txt): class xc yc w h score, normalized."""
        folder = self.folder / "labels"
        folder.mkdir(exist_ok=True)
        stem = f"{source.stem}_{index}" if self.video is not None else Path(self.images[-1]).stem
        height, width = shape[:2]
        lines = []
        for (x1, y1, x2, y2), score, cls in zip(det.boxes, det.scores, det.classes):
            lines.append(f"{int(cls)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                         f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f} {score:.4f}")
        out = AtomicFile(folder / f"{stem}.txt")
        out.tmp.write_text("".join(line + "\n" for line in lines))
        self.labels.append(out.commit())

    def _image_name(self, source: Path) -> str:
        """The input's own file name (its format and its suffix's case kept), made unique: a.jpg, a.png, a_2.png"""
        suffix = source.suffix if source.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".jpg"
        name, n = f"{source.stem}{suffix}", 1
        while name in self.names or name == "predictions.jsonl":
            n += 1
            name = f"{source.stem}_{n}{suffix}"
        self.names.add(name)
        return name

    def close(self) -> list[Path]:
        """Finalize every file; returns what was written."""
        written = []
        try:
            if self.video_writer is not None:
                writer, self.video_writer = self.video_writer, None
                written.append(finish_video(writer, self.video, self.frames))
            self.jsonl_file.close()
            written.append(self.jsonl.commit())
        except BaseException:
            self.abort()
            raise
        return written + self.images + (self.labels or [])

    def abort(self) -> None:
        if self.video_writer is not None:
            self.video_writer.release()
            self.video_writer = None
        self.jsonl_file.close()
        for f in (self.video, self.jsonl):
            if f is not None:
                f.abort()
        for image in self.images + (self.labels or []):
            image.unlink(missing_ok=True)


def finish_video(writer, video: AtomicFile, frames: int) -> Path:
    """Release an OpenCV writer and give its video the final name, only if it reads back with the ``frames``
    written (OpenCV's writer fails silently on a full disk); else the temporary is removed and OutputError."""
    writer.release()
    capture = cv2.VideoCapture(str(video.tmp))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    if count != frames:
        video.abort()
        raise OutputError(f"{video.final} could not be written completely ({count} of {frames} frames read back; "
                          "is the disk full?)")
    return video.commit()


def _record(det: Detections, names: dict, source: str, index: int, mode: str, timesteps: int | None) -> dict:
    return {"source": source, "frame": index, "mode": mode, "timesteps": timesteps,
            "detections": _listed(det, names)}
