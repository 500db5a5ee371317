"""Bounds on every number spikeyolo reads from a file or the command line, checked before anything is allocated.

Each bound is generous for real use and small enough that no input can ask for more memory or time than the
largest real model, image or recording would. A value outside its bound is one ``LimitError`` naming where it
came from, the field, the value and the bound (the CLI prints it as one line and exits 2).
"""
from __future__ import annotations

import math

MAX_IMGSZ = 4096          # pixels, a multiple of 32 (the detectors' stride)
MAX_LEVELS = 256          # QCFS levels L
MAX_BURST = 64            # spikes per neuron and step
MAX_TIMESTEPS = 4096      # simulated steps
MAX_BATCH = 1024          # images per batch
MAX_CLASSES = 10_000      # detector classes
MAX_CHANNELS = 4096       # channels of one layer (after width scaling)
MAX_LAYERS = 128          # layers of a model yaml
MAX_REPEATS = 16          # a yaml layer's repeat count, before depth scaling
MAX_SCALE = 2.0           # depth_multiple and width_multiple
MAX_PARAMETERS = 1_000_000_000  # a model yaml's parameters (4 GB float32), bounded from above before building
MAX_SENSOR = 4096         # event camera width and height
MAX_EVENT_WINDOWS = 1_000_000  # frames one event recording may produce
MAX_CALIB_IMAGES = 100_000
MAX_CAMERA_INDEX = 1023   # a camera device index (OpenCV takes a C int)
MAX_THRESHOLD_SCALES = 16 # val --threshold-scale values, each a full evaluation
MAX_IMAGE_SIDE = 100_000  # pixels, of an image a dataset annotation describes
MAX_YAML_BYTES = 2**20     # a dataset yaml (10,000 class names take ~0.2 MB; parsing is slow and large beyond)
MAX_PT_BYTES = 4 * 2**30   # the tensors a .pt may unpack to (a yolov8x training checkpoint holds ~0.4 GB)
MAX_MODULE_DEPTH = 64      # nesting of a .pt's module tree (ultralytics' is ~5)
MAX_MODULES = 100_000      # modules visited in a .pt's tree (yolov8x has ~400)
MAX_OBJECTS_PER_IMAGE = 5_000  # labelled boxes of one image (the densest real sets hold ~1,000; the detection
                               # loss's assignment allocates objects × anchors per image)


class LimitError(ValueError):
    """A number outside spikeyolo's bounds, or of the wrong type; the message names the source and the field."""


def integer(value, where: str, field: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high] (bool and 4.0-style floats are refused: they are not what was meant)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitError(f"{where}: {field} must be an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise LimitError(f"{where}: {field} must be in [{low}, {high}], got {value}")
    return value


def real(value, where: str, field: str, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (or (low, high] with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LimitError(f"{where}: {field} must be a finite number, got {value!r}")
    if value > high or value < low or (low_open and value == low):
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise LimitError(f"{where}: {field} must be in {interval}, got {value}")
    return float(value)


def image_size(value, where: str, field: str = "imgsz") -> int:
    """An input size: an integer multiple of 32 in [32, MAX_IMGSZ]."""
    size = integer(value, where, field, 32, MAX_IMGSZ)
    if size % 32:
        raise LimitError(f"{where}: {field} must be a multiple of 32 (the detector's stride), got {size}")
    return size
