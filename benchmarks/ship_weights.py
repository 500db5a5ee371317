"""Write a shipped weights file: a trained checkpoint plus its measured mAP and training facts.

Usage: python benchmarks/ship_weights.py CHECKPOINT VAL_REPORT_JSON OUT [--note TEXT]
The metadata stays readable JSON in the safetensors header (spikeyolo.checkpoint.read_metadata).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from spikeyolo.checkpoint import load_detector, save_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("report")
    parser.add_argument("out")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    model, meta = load_detector(args.checkpoint)
    report = json.loads(Path(args.report).read_text())
    measured = {"dataset": report["dataset"], "split": report["split"], "imgsz": report["imgsz"],
                "conversion": report["mode"],
                "ann": {k: report["ann"][k] for k in ("map50", "map50_95")},
                "snn": {t: {k: r[k] for k in ("map50", "map50_95")} for t, r in report["snn"].items()}}
    keep = {k: meta[k] for k in ("imgsz", "data", "epochs") if k in meta}
    out = save_detector(model, args.out, **keep, training_metrics=meta.get("metrics"), measured=measured,
                        note=args.note)
    print(out)


if __name__ == "__main__":
    main()
