"""Object sizes of a dataset split as the detector sees them: each box's longer side after the letterbox to --imgsz.

Usage: python benchmarks/box_sizes.py ../shared/datasets/bccd --split val --imgsz 320
Prints the number of boxes, the median size in pixels and the share of boxes of 32 px or more (the stride-16 and
stride-32 outputs' sizes), per class and in all; read from the prepared labels (`spikeyolo data` prepares them).
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from spikeyolo.data import prepare_dataset
from spikeyolo.data.images import dataset_names, split_images
from spikeyolo.data.yolo import label_boxes, label_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="val")
    parser.add_argument("--imgsz", type=int, default=320)
    args = parser.parse_args()
    data_yaml = prepare_dataset(args.data)
    names = dataset_names(data_yaml)
    sizes, classes = [], []
    for image in split_images(data_yaml, args.split):
        with Image.open(image) as im:
            width, height = im.size
        labels, boxes = label_boxes(label_path(image), len(names))
        scale = args.imgsz / max(width, height)
        sizes += [max(box[2] * width, box[3] * height) * scale for box in boxes]
        classes += labels
    sizes, classes = np.array(sizes), np.array(classes)
    for index, name in [(None, "all")] + list(enumerate(names)):
        chosen = sizes if index is None else sizes[classes == index]
        if len(chosen):
            print(f"{name:12s} {len(chosen):5d} boxes, median {np.median(chosen):6.1f} px, "
                  f"{100 * (chosen >= 32).mean():5.1f} % of 32 px or more")


if __name__ == "__main__":
    main()
