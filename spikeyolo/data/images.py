"""Image lists of prepared datasets, read into letterboxed batches."""
from __future__ import annotations

from pathlib import Path

import cv2
import yaml

from spikeyolo.data.records import DatasetError
from spikeyolo.ultra import letterbox_batch

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def split_images(data_yaml: str | Path, split: str = "train") -> list[Path]:
    """Sorted image files of one split of an ultralytics dataset yaml (folder or list file)."""
    config = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(config.get("path") or Path(data_yaml).parent)
    entry = config.get(split)
    if entry is None:
        raise DatasetError(f"{data_yaml} has no '{split}' split")
    folder = entry if Path(entry).is_absolute() else root / entry
    folder = Path(folder)
    if folder.is_file():
        files = [Path(line.strip()) for line in folder.read_text().splitlines() if line.strip()]
    else:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"no images in split '{split}' of {data_yaml}")
    return files


def read_image(path: Path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}: the file is missing, truncated or not an image")
    return image


def image_batches(files: list[Path], imgsz: int, batch: int = 8):
    """Yield letterboxed [B, 3, imgsz, imgsz] batches of the given files."""
    for start in range(0, len(files), batch):
        yield letterbox_batch([read_image(f) for f in files[start:start + batch]], imgsz)
