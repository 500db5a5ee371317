"""Write a shipped weights file: a trained checkpoint plus its measured mAP and training facts.

Usage: python benchmarks/ship_weights.py CHECKPOINT OUT VAL_REPORT_JSON [VAL_REPORT_JSON ...] [--note TEXT]
       [--license SPDX] [--source TEXT]  (weights derived from someone else's: their license and where they came from)
The metadata stays readable JSON in the safetensors header (spikeyolo.checkpoint.read_metadata).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from spikeyolo.quantize.checkpoint import load_detector, save_detector


def _neurons(report: dict) -> str:
    """A report's neuron kind: burst1 (binary IF), burst4, ..., with -snm for signed neurons with memory."""
    return f"burst{report.get('burst', 1)}" + ("-snm" if report.get("snm") else "")


def _measured(reports: list[dict]) -> dict:
    """What val measured on one dataset: the ANN, and the SNN of each report's neurons at each T."""
    first = reports[0]
    return {"dataset": first["dataset"], "split": first["split"], "imgsz": first["imgsz"],
            "conversion": first["mode"], "ann": {k: first["ann"][k] for k in ("map50", "map50_95")},
            "snn": {_neurons(r): {t: {k: e[k] for k in ("map50", "map50_95")} for t, e in r["snn"].items()}
                    for r in reports}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("reports", nargs="+", help="spikeyolo val report.json files (e.g. binary and burst)")
    parser.add_argument("--note", default="")
    parser.add_argument("--license", help="the weights' license (SPDX id), e.g. GPL-3.0 for weights fine-tuned "
                        "from the official YOLOv5 release")
    parser.add_argument("--source", help="the pretrained weights they were fine-tuned from (name, sha256, origin)")
    args = parser.parse_args()
    model, meta = load_detector(args.checkpoint)
    reports = [json.loads(Path(p).read_text()) for p in args.reports]
    datasets = list(dict.fromkeys(r["dataset"] for r in reports))  # in the order given
    parts = [_measured([r for r in reports if r["dataset"] == dataset]) for dataset in datasets]
    keep = {k: meta[k] for k in ("imgsz", "data", "epochs", "events", "teacher", "fine_tuned_from", "distillation")
            if k in meta}
    keep.update({k: v for k, v in (("license", args.license), ("source", args.source)) if v})
    if len(parts) > 1:  # several datasets: each with its name (the first stays "measured", as one-dataset files have it)
        keep["measured_on"] = [{**part, "dataset": Path(part["dataset"]).name} for part in parts]
    out = save_detector(model, args.out, **keep, training_metrics=meta.get("metrics"), measured=parts[0],
                        note=args.note)
    print(out)


if __name__ == "__main__":
    main()
