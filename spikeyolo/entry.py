"""The `spikeyolo` command's entry point: imports nothing heavy before it can answer Ctrl-C with one line.

The command line's modules import torch, ultralytics and OpenCV (seconds on a small machine); a Ctrl-C in those
first seconds would otherwise end in a KeyboardInterrupt traceback. Once ``spikeyolo.cli.main`` runs, it handles
Ctrl-C itself (removing anything half-written).
"""
from __future__ import annotations

import sys


def main() -> int:
    try:
        from spikeyolo.cli import main as run

        return run()
    except KeyboardInterrupt:
        print("spikeyolo: interrupted while starting (nothing was written)", file=sys.stderr)
        return 130
