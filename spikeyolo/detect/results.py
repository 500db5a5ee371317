"""What the Python API returns for one image or frame: detections with their class names, per-step detections,
and the means to look at them (``plot``), keep them (``save``) and pass them on (``to_dict``, ``to_json``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from spikeyolo.atomic import AtomicFile, OutputError
from spikeyolo.detections import Detections
from spikeyolo.ultra import draw_detections

IMAGE_FORMATS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Result:
    """One image's detections. ``boxes`` are xyxy in the image's own pixels; ``steps[t - 1]`` holds the
    detections after step t (when asked for with ``every_step``), ``None`` otherwise."""
    image: np.ndarray  # the input as 8-bit BGR, H×W×3
    path: str  # the file, video or stream it came from ("" for an array)
    frame: int  # the frame's index in its video or stream (0 for a still image)
    names: dict[int, str]  # class index → name
    detections: Detections
    mode: str  # e.g. "SNN T=4 burst≤4" or "ANN"
    timesteps: int | None  # T of the SNN run (None for the ANN)
    steps: list[Detections] | None = None

    @property
    def boxes(self) -> np.ndarray:
        """[K, 4] x1, y1, x2, y2 in image pixels."""
        return self.detections.boxes

    @property
    def scores(self) -> np.ndarray:
        return self.detections.scores

    @property
    def classes(self) -> np.ndarray:
        return self.detections.classes

    @property
    def labels(self) -> list[str]:
        """The class name of each box."""
        return [self.names[int(c)] for c in self.classes]

    def __len__(self) -> int:
        return len(self.scores)

    def _at(self, step: int | None) -> Detections:
        if step is None:
            return self.detections
        if self.steps is None or not 1 <= step <= len(self.steps):
            raise ValueError(f"step {step}: this result holds detections after steps 1 … {len(self.steps or [])} "
                             "(run with every_step=True to keep them)")
        return self.steps[step - 1]

    def plot(self, step: int | None = None) -> np.ndarray:
        """The image with boxes, class names and scores drawn (BGR); ``step``: the detections after that step."""
        found = self._at(step)
        rows = torch.from_numpy(np.concatenate([found.boxes, found.scores[:, None], found.classes[:, None]], 1))
        return draw_detections(self.image, rows.float(), self.names, self.path)

    def save(self, path: str | Path, step: int | None = None) -> Path:
        """The plotted image written to ``path`` (.jpg, .png or .bmp), complete or not at all."""
        path = Path(path)
        if path.suffix.lower() not in IMAGE_FORMATS:
            raise ValueError(f"{path}: save as one of {', '.join(IMAGE_FORMATS)}")
        out = AtomicFile(path)
        if not cv2.imwrite(str(out.tmp), self.plot(step)):
            out.abort()
            raise OutputError(f"cannot write {path} (is the folder there and writable?)")
        return out.commit()

    def to_dict(self) -> dict:
        """The record ``spikeyolo detect`` writes to predictions.jsonl (with ``steps`` when kept)."""
        record = {"source": self.path, "frame": self.frame, "mode": self.mode, "timesteps": self.timesteps,
                  "detections": listed(self.detections, self.names)}
        if self.steps is not None:
            record["steps"] = [{"t": t, "detections": listed(step, self.names)} for t, step in enumerate(self.steps, 1)]
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __repr__(self) -> str:
        found = ", ".join(f"{name} {score:.2f}" for name, score in zip(self.labels[:5], self.scores[:5]))
        more = f", … {len(self) - 5} more" if len(self) > 5 else ""
        return f"Result({self.path or 'array'}#{self.frame}, {self.mode}: {len(self)} detection(s){': ' if found else ''}{found}{more})"


def listed(found: Detections, names: dict) -> list[dict]:
    """Detections as JSON-ready dicts: box (xyxy pixels), score, class index and name."""
    return [{"box": [round(float(v), 2) for v in box], "score": round(float(score), 4), "class": int(cls),
             "name": names[int(cls)]} for box, score, cls in zip(found.boxes, found.scores, found.classes)]
