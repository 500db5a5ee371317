"""Build the N-Caltech101-style event version of BCCD (saccades over each image) into a folder.

Usage: python benchmarks/make_event_bccd.py [BCCD_DIR] [OUT_DIR]
Then train on it like any VOC set: see benchmarks/train_events.sh.
"""
import sys
import time
from pathlib import Path

from spikeyolo.events.saccades import build_event_dataset

source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/bccd")
out = Path(sys.argv[2] if len(sys.argv) > 2 else Path.home() / ".cache/spikeyolo/events/bccd-saccades")
start = time.perf_counter()
build_event_dataset(source, out)
print(f"event dataset written to {out} in {time.perf_counter() - start:.0f} s")
