"""The files the project ships beside its code (model yamls, weights): in the source tree, or, for an
installed wheel, under ``<prefix>/share/spikeyolo`` (pyproject's data-files)."""
from __future__ import annotations

import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent
INSTALLED_ROOT = Path(sys.prefix) / "share" / "spikeyolo"


def resource(relative: str) -> Path:
    """``relative`` (e.g. 'weights/x.safetensors') where it exists; else its source-tree path (for messages)."""
    for root in (SOURCE_ROOT, INSTALLED_ROOT):
        if (root / relative).exists():
            return root / relative
    return SOURCE_ROOT / relative
