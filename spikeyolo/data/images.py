"""Image lists of prepared datasets, read into letterboxed batches."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from PIL import Image

from spikeyolo.data.records import DatasetError
from spikeyolo.data.yolo import label_boxes, label_path
from spikeyolo.ultra import letterbox_batch, letterbox_boxes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def split_images(data_yaml: str | Path, split: str = "train") -> list[Path]:
    """Sorted image files of one split of an ultralytics dataset yaml (folder or list file)."""
    config = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(config.get("path") or Path(data_yaml).parent)
    entries = config.get(split)
    if entries is None:
        raise DatasetError(f"{data_yaml} has no '{split}' split: use one of "
                           f"{', '.join(k for k in ('train', 'val', 'test') if config.get(k))}")
    files = []
    for entry in entries if isinstance(entries, list) else [entries]:
        folder = Path(entry) if Path(entry).is_absolute() else root / entry
        if folder.is_file():
            listed = [Path(line.strip()) for line in folder.read_text().splitlines() if line.strip()]
            files += [p if p.is_absolute() else folder.parent / p for p in listed]
        else:
            files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"no images in split '{split}' of {data_yaml}")
    return files


def dataset_names(data_yaml: str | Path) -> list[str]:
    """Class names of an ultralytics dataset yaml, in class-index order (``names`` as a list or a dict)."""
    names = yaml.safe_load(Path(data_yaml).read_text()).get("names") or []
    return [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any image OpenCV reads (gray, BGRA, 16-bit, float) → 8-bit BGR."""
    if image.dtype == np.uint16:
        image = (image / 257).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image * (255 if image.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def decodes_fully(path: Path) -> bool:
    """PIL decodes the whole file quietly (OpenCV's decoder prints to stderr on truncated JPEGs).

    ultralytics patches Image.open to fetch a HEIF plugin on unknown files, which fails offline with an
    ImportError: that too means "not an image we can read".
    """
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except (OSError, SyntaxError, ValueError, ImportError, Image.DecompressionBombError):
        return False


def load_image(path: Path) -> np.ndarray | None:
    """8-bit BGR pixels of an image file, or None if it is unreadable or truncated."""
    if not decodes_fully(path):
        return None
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None or image.size == 0 else to_bgr8(image)


def read_image(path: Path) -> np.ndarray:
    image = load_image(path)
    if image is None:
        raise DatasetError(f"cannot read image {path}: the file is missing, truncated or not an image")
    return image


def image_batches(files: list[Path], imgsz: int, batch: int = 8):
    """Yield letterboxed [B, 3, imgsz, imgsz] batches of the given files."""
    for start in range(0, len(files), batch):
        yield letterbox_batch([read_image(f) for f in files[start:start + batch]], imgsz)


def labelled_batches(files: list[Path], imgsz: int, classes: int, batch: int = 8):
    """Yield (letterboxed [B, 3, imgsz, imgsz] batch, its labels in ultralytics' trainer format: {'batch_idx': [N],
    'cls': [N], 'bboxes': [N, 4] normalized xywh on the letterboxed square}) for the given files of a prepared
    dataset (labels next to the images, as ultralytics finds them)."""
    for start in range(0, len(files), batch):
        chunk = files[start:start + batch]
        images = [read_image(f) for f in chunk]
        index, labels, boxes = [], [], []
        for number, (path, image) in enumerate(zip(chunk, images)):
            found, found_boxes = label_boxes(label_path(path), classes)
            index += [number] * len(found)
            labels += found
            if found_boxes:
                boxes.append(letterbox_boxes(np.array(found_boxes), image.shape[:2], imgsz))
        targets = {"batch_idx": torch.tensor(index, dtype=torch.float32),
                   "cls": torch.tensor(labels, dtype=torch.float32),
                   "bboxes": torch.from_numpy(np.concatenate(boxes)).float() if boxes else torch.zeros(0, 4)}
        yield letterbox_batch(images, imgsz), targets


def flip_labels(targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The labels of the horizontally flipped images."""
    boxes = targets["bboxes"].clone()
    boxes[:, 0] = 1.0 - boxes[:, 0]
    return {**targets, "bboxes": boxes}
