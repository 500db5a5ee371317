"""spikeyolo: YOLO detectors trained with QCFS activations and converted to spiking networks."""
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
