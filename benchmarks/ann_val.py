"""mAP of a detector as an ANN alone, with the same data, metrics and class matching as `spikeyolo val`: the teacher
rows of docs/results.md "COCO's 80 classes" (a SiLU model cannot be converted, so `val` cannot take it).

Usage: python benchmarks/ann_val.py WEIGHTS DATA [--imgsz 320] [--out report.json]
WEIGHTS: spikeyolo .safetensors (e.g. `spikeyolo import yolov5n-v6.1-coco.pt --anchor-head`'s). Prints mAP50,
mAP50-95 (ultralytics' metrics) and the dataset's own metric (pycocotools' COCO mAP50 and mAP for COCO data).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from spikeyolo.convert.load import load_model, read_weights
from spikeyolo.data import prepare_dataset
from spikeyolo.eval.anytime import evaluate_anytime
from spikeyolo.eval.evaluators import dataset_evaluator
from spikeyolo.eval.val import check_classes


def ann_report(weights: str, data: str, imgsz: int, split: str = "val") -> dict:
    file = read_weights(weights)
    data_yaml = prepare_dataset(data)
    rows = check_classes(file.names, data_yaml, data, weights)
    ann = load_model(file, "cpu", snn=False).ann
    start = time.time()
    found = evaluate_anytime(ann, None, data_yaml, [1], imgsz, 16, "cpu", split, class_rows=rows,
                             evaluator=dataset_evaluator(data_yaml, split))
    accuracy = found["ann"]
    return {"weights": weights, "data": data, "imgsz": imgsz, "images": found["seconds"]["images"],
            "map50": accuracy.map50, "map50_95": accuracy.map50_95, "dataset_metric": accuracy.dataset_metric,
            "seconds": round(time.time() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("data")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--out", help="also write the figures here (JSON)")
    args = parser.parse_args()
    report = ann_report(args.weights, args.data, args.imgsz)
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
