"""YOLO txt labels: one object a line, class cx cy w h (or class x1 y1 x2 y2 … for a polygon), in [0, 1]."""
from __future__ import annotations

import math
import os
from pathlib import Path

from spikeyolo.data.records import DatasetError
from spikeyolo.limits import MAX_OBJECTS_PER_IMAGE

MAX_LABEL_BYTES = 10_000_000  # one label file


def read_yolo_labels(path: Path, classes: int) -> list[list[float]]:
    """The rows of a label file; a DatasetError naming the file and line for anything ultralytics would drop or
    misread (not numbers, NaN, a class outside 0..classes-1, coordinates outside [0, 1], a wrong count)."""
    try:
        if path.stat().st_size > MAX_LABEL_BYTES:
            raise DatasetError(f"{path}: label file larger than {MAX_LABEL_BYTES} bytes: not a label file")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read label file {path}: {err}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise DatasetError(f"{where}: a label line holds numbers only (class cx cy w h), "
                               f"got {line[:60]!r}") from None
        if len(values) != 5 and (len(values) < 7 or len(values) % 2 == 0):
            raise DatasetError(f"{where}: expected 5 numbers (class cx cy w h) or a class and polygon points, "
                               f"got {len(values)}")
        cls, coords = values[0], values[1:]
        if not all(math.isfinite(v) for v in values) or cls != int(cls) or not 0 <= cls < classes:
            raise DatasetError(f"{where}: class {values[0]} is not one of 0..{classes - 1} (or a value is not finite)")
        if not all(0.0 <= v <= 1.0 for v in coords):
            raise DatasetError(f"{where}: coordinates must be normalized to [0, 1], got {line[:60]!r}")
        rows.append(values)
        if len(rows) > MAX_OBJECTS_PER_IMAGE:
            raise DatasetError(f"{path}: more than {MAX_OBJECTS_PER_IMAGE} objects in one image: not a label file "
                               "spikeyolo trains on (split the image into tiles)")
    return rows


def label_path(image: Path) -> Path:
    """Where ultralytics looks for an image's label: …/labels/… for …/images/… (the last one), suffix .txt."""
    text = str(image)
    marker = f"{os.sep}images{os.sep}"
    if marker in text:
        head, _, tail = text.rpartition(marker)
        text = f"{head}{os.sep}labels{os.sep}{tail}"
    return Path(text).with_suffix(".txt")


def label_boxes(path: Path, classes: int) -> tuple[list[int], list[list[float]]]:
    """Classes and normalized xywh boxes of a label file (a polygon becomes the box around it); none when the
    file is missing (an image without objects, as ultralytics reads it)."""
    if not path.is_file():
        return [], []
    labels, boxes = [], []
    for row in read_yolo_labels(path, classes):
        labels.append(int(row[0]))
        if len(row) == 5:
            boxes.append(row[1:])
        else:
            xs, ys = row[1::2], row[2::2]
            boxes.append([(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)])
    return labels, boxes
