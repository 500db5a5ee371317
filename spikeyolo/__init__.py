"""spikeyolo: YOLO detectors trained with QCFS activations and converted to spiking networks.

    from spikeyolo import SpikingYOLO
    results = SpikingYOLO()("image.jpg")

What the package exports is imported when first used (``import spikeyolo`` alone loads neither torch nor
ultralytics, so the command line answers --help at once).
"""
from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"


def _offline_environment() -> None:
    """Keep ultralytics offline: set before it is first imported (spikeyolo.ultra does the rest)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path.home() / ".config" / "spikeyolo"))


_offline_environment()


# name → module: the public API, imported on first use
_EXPORTS = {"SpikingYOLO": "spikeyolo.detect.model", "Result": "spikeyolo.detect.results",
            "Detections": "spikeyolo.detections", "Detector": "spikeyolo.detect.predictor",
            "StreamPolicy": "spikeyolo.detect.predictor", "SpikingDetector": "spikeyolo.engine.runner",
            "load_detector": "spikeyolo.quantize.checkpoint", "load_snn": "spikeyolo.convert.artifact", "validate": "spikeyolo.eval.val"}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spikeyolo' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
