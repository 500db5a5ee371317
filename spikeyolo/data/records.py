"""Typed records for detection datasets and the box checks shared by every reader."""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from spikeyolo.limits import MAX_OBJECTS_PER_IMAGE, MAX_YAML_BYTES

LOGGER = logging.getLogger("spikeyolo.data")


class DatasetError(ValueError):
    """A dataset that cannot be read; the message says which file and what to do."""


@dataclass
class ImageRecord:
    """One image and its boxes: (class index, x1, y1, x2, y2) in pixels; ``difficult`` flags per box."""
    path: Path
    width: int
    height: int
    boxes: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    difficult: list[bool] = field(default_factory=list)
    image_id: int | str | None = None

    def add(self, box: tuple, difficult: bool, where: str) -> None:
        """One more box; more than MAX_OBJECTS_PER_IMAGE in one image is an error naming ``where`` (the detection
        loss's assignment allocates objects × anchors: 100,000 boxes on one image took tens of GB)."""
        if len(self.boxes) >= MAX_OBJECTS_PER_IMAGE:
            raise DatasetError(f"{where}: more than {MAX_OBJECTS_PER_IMAGE} objects in one image: not a dataset "
                               "spikeyolo trains on (split the image into tiles)")
        self.boxes.append(box)
        self.difficult.append(difficult)


NOT_A_NUMBER = "coordinates not numbers"
UNDER_ONE_PIXEL = "under 1 px once clipped to the image"


@dataclass
class BoxAudit:
    """What the box checks skipped (counted by reason) or clipped, with the files involved."""
    reasons: Counter = field(default_factory=Counter)
    clipped: int = 0
    files: set[str] = field(default_factory=set)

    @property
    def skipped(self) -> int:
        return sum(self.reasons.values())

    def skip(self, reason: str, where: str) -> None:
        self.reasons[reason] += 1
        self.files.add(where)

    def merge(self, other: "BoxAudit") -> None:
        self.reasons.update(other.reasons)
        self.clipped += other.clipped
        self.files |= other.files

    def as_dict(self) -> dict:
        return {"skipped": dict(self.reasons), "clipped": self.clipped, "files": sorted(self.files)}

    @classmethod
    def from_dict(cls, saved: dict) -> "BoxAudit":
        return cls(Counter(saved["skipped"]), saved["clipped"], set(saved["files"]))

    def describe(self) -> str:
        """'skipped 3 box(es) (3 crowd …) and clipped 2 to the image', or '' when nothing was."""
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items()))
        done = ([f"skipped {self.skipped} box(es) ({why})"] if self.skipped else []) + \
            ([f"clipped {self.clipped} to the image"] if self.clipped else [])
        return " and ".join(done)

    def report(self, source: str) -> None:
        if self.skipped or self.clipped:
            names = ", ".join(sorted(self.files)[:5]) + (" ..." if len(self.files) > 5 else "")
            LOGGER.warning(f"{source}: {self.describe()} in {len(self.files)} file(s): {names}")


def inside(folder: Path, name: str, where: str) -> Path:
    """``folder / name`` for a plain relative file name; a DatasetError for absolute paths or ones that climb out
    with ``..`` (a dataset may not make spikeyolo link files from elsewhere on the machine)."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts \
            or "\x00" in name:
        raise DatasetError(f"{where}: file name {str(name)[:80]!r} is not a plain relative name inside {folder}: "
                           "name the images relative to their folder")
    return folder / name


def checked_box(box, width: int, height: int, audit: BoxAudit, where: str):
    """Clip an (x1, y1, x2, y2) box to the image; None (counted) if it is degenerate or not a number."""
    try:
        x1, y1, x2, y2 = (float(v) if not isinstance(v, (bool, list, dict)) else float("nan") for v in box)
    except (TypeError, ValueError):
        x1 = y1 = x2 = y2 = float("nan")
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):  # NaN, inf, text, a wrong count of numbers
        audit.skip(NOT_A_NUMBER, where)
        return None
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 - cx1 < 1.0 or cy2 - cy1 < 1.0:
        audit.skip(UNDER_ONE_PIXEL, where)
        return None
    if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
        audit.clipped += 1
        audit.files.add(where)
    return cx1, cy1, cx2, cy2


def read_dataset_yaml(path: Path):
    """A dataset yaml, parsed: a file over MAX_YAML_BYTES is refused before parsing (a yaml parser takes minutes
    and gigabytes on a few megabytes of names), unreadable ones are one DatasetError."""
    import yaml

    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise DatasetError(f"dataset yaml {path} is {size / 2**20:.1f} MB: a dataset yaml names files and classes "
                               f"in at most {MAX_YAML_BYTES // 2**20} MB; check that this is the dataset's yaml")
        return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: faster
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DatasetError(f"cannot read dataset yaml {path}: {str(err).splitlines()[0]}") from None
