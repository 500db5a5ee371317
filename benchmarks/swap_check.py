"""What swapping a trained detector's activations for QCFS costs before any training: mAP50 on a dataset's val
split of the model as it is, and with QCFS at each L (λ calibrated per layer at a percentile of its inputs on the
first val batch, as `spikeyolo train --from` starts). docs/results.md "Natural images: oi5".
Usage: python benchmarks/swap_check.py WEIGHTS [--data ../shared/datasets/oi5] [--imgsz 320] [--levels 4 8 16]
"""
from __future__ import annotations

import argparse
import copy

import torch

from spikeyolo.data import prepare_dataset
from spikeyolo.quantize.checkpoint import load_detector
from spikeyolo.quantize.swap import calibrate_thresholds, quantize_model
from spikeyolo.ultra import detection_validators


@torch.no_grad()
def map50(model, dataset, batches, names) -> float:
    validator = detection_validators(dataset, names, ["swap"], batches[0]["img"].shape[-1])[1]["swap"]
    for batch in batches:
        validator.update_metrics(validator.postprocess(model(batch["img"])[0]), batch)
    return validator.get_stats()["metrics/mAP50(B)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--data", default="../shared/datasets/oi5")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--levels", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--percentile", type=float, default=99.0)
    args = parser.parse_args()
    model, _ = load_detector(args.weights)
    dataset = prepare_dataset(args.data)
    loader, validators = detection_validators(dataset, model.names, ["load"], args.imgsz)
    batches = [validators["load"].preprocess(raw) for raw in loader]
    print(f"{args.weights} as it is: mAP50 {map50(model, dataset, batches, model.names):.3f}")
    for levels in args.levels:
        swapped = copy.deepcopy(model)
        quantize_model(swapped, levels)
        calibrate_thresholds(swapped, batches[0]["img"], args.percentile)
        print(f"with QCFS L = {levels} (λ at the {args.percentile}th percentile): "
              f"mAP50 {map50(swapped.eval(), dataset, batches, model.names):.3f}")


if __name__ == "__main__":
    main()
