"""Photos without labels as augmented training batches (self-distillation: the teacher labels whatever it sees).

Every sample is either a mosaic of four photos (each a random crop, scaled, in one quadrant of a random centre) or
one photo at a random scale and place on a grey canvas (ultralytics' padding grey); then a left-right flip and a
colour jitter (hue, saturation, brightness); a share of the samples (``mixup``) is then blended with a second such
sample (weight ~ Beta(32, 32), as YOLOv5's mixup): more distinct inputs from the same few hundred photos, which a
teacher labels as well as any. No labels move with the pixels: the teacher sees the same images.
Photos are read once, shrunk so that their long side is at most ``2 × imgsz``, and kept in memory.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from spikeyolo.data.images import IMAGE_SUFFIXES, load_image

GREY = 114


def photo_files(sources: list[str | Path]) -> list[Path]:
    """The image files of folders (searched recursively) and single files, sorted, each once."""
    files: set[Path] = set()
    for source in map(Path, sources):
        if source.is_dir():
            files.update(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
            files.add(source)
        else:
            raise ValueError(f"{source}: not an image or a folder of images")
    if not files:
        raise ValueError(f"no images in {', '.join(map(str, sources))}")
    return sorted(files)


def read_photos(files: list[Path], imgsz: int) -> list[np.ndarray]:
    """BGR uint8 photos, long side ≤ 2·imgsz; files that do not decode fully are skipped (and counted by the caller)."""
    photos = []
    for path in files:
        image = load_image(path)
        if image is None:
            continue
        scale = 2 * imgsz / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        photos.append(image)
    return photos


def _paste(canvas: np.ndarray, photo: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Fill ``box`` (x0, y0, x1, y1) of the canvas with a random crop of the photo scaled to cover it."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    if width < 2 or height < 2:
        return
    zoom = max(width / photo.shape[1], height / photo.shape[0]) * rng.uniform(1.0, 1.6)
    scaled = cv2.resize(photo, (max(width, round(photo.shape[1] * zoom)), max(height, round(photo.shape[0] * zoom))),
                        interpolation=cv2.INTER_LINEAR)
    top = rng.integers(0, scaled.shape[0] - height + 1)
    left = rng.integers(0, scaled.shape[1] - width + 1)
    canvas[y0:y1, x0:x1] = scaled[top:top + height, left:left + width]


def mosaic(photos: list[np.ndarray], imgsz: int, rng: np.random.Generator) -> np.ndarray:
    canvas = np.full((imgsz, imgsz, 3), GREY, np.uint8)
    cx, cy = (rng.uniform(0.3, 0.7, 2) * imgsz).astype(int)
    for photo, box in zip(photos, [(0, 0, cx, cy), (cx, 0, imgsz, cy), (0, cy, cx, imgsz), (cx, cy, imgsz, imgsz)]):
        _paste(canvas, photo, box, rng)
    return canvas


def placed(photo: np.ndarray, imgsz: int, rng: np.random.Generator, scales=(0.5, 1.5)) -> np.ndarray:
    """The photo letterboxed at a random scale (× the fit) and place; the parts beyond the canvas cut off."""
    canvas = np.full((imgsz, imgsz, 3), GREY, np.uint8)
    zoom = imgsz / max(photo.shape[:2]) * rng.uniform(*scales)
    image = cv2.resize(photo, (max(1, round(photo.shape[1] * zoom)), max(1, round(photo.shape[0] * zoom))),
                       interpolation=cv2.INTER_LINEAR)
    x = int(rng.integers(min(0, imgsz - image.shape[1]), max(0, imgsz - image.shape[1]) + 1))
    y = int(rng.integers(min(0, imgsz - image.shape[0]), max(0, imgsz - image.shape[0]) + 1))
    sx, sy = max(0, -x), max(0, -y)
    dx, dy = max(0, x), max(0, y)
    w, h = min(image.shape[1] - sx, imgsz - dx), min(image.shape[0] - sy, imgsz - dy)
    canvas[dy:dy + h, dx:dx + w] = image[sy:sy + h, sx:sx + w]
    return canvas


def jitter(image: np.ndarray, rng: np.random.Generator, hue=0.015, saturation=0.6, value=0.35) -> np.ndarray:
    """ultralytics' HSV augmentation (the same default gains)."""
    gains = rng.uniform(-1, 1, 3) * (hue, saturation, value) + 1
    h, s, v = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut = [((x * gains[0]) % 180).astype(np.uint8), np.clip(x * gains[1], 0, 255).astype(np.uint8),
           np.clip(x * gains[2], 0, 255).astype(np.uint8)]
    hsv = cv2.merge((cv2.LUT(h, lut[0]), cv2.LUT(s, lut[1]), cv2.LUT(v, lut[2])))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def augmented(photos: list[np.ndarray], imgsz: int, rng: np.random.Generator, mosaic_rate: float = 0.5) -> np.ndarray:
    if rng.random() < mosaic_rate:
        image = mosaic([photos[i] for i in rng.integers(0, len(photos), 4)], imgsz, rng)
    else:
        image = placed(photos[int(rng.integers(0, len(photos)))], imgsz, rng)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return jitter(np.ascontiguousarray(image), rng)


MIXUP_BETA = 32.0  # YOLOv5's mixup weight: Beta(32, 32), a blend near half and half


def mixed(photos: list[np.ndarray], imgsz: int, rng: np.random.Generator, mixup: float = 0.0) -> np.ndarray:
    """One augmented sample as float32 BGR in [0, 255]; with probability ``mixup`` blended with a second one."""
    image = augmented(photos, imgsz, rng).astype(np.float32)
    if mixup > 0.0 and rng.random() < mixup:
        weight = rng.beta(MIXUP_BETA, MIXUP_BETA)
        image = weight * image + (1.0 - weight) * augmented(photos, imgsz, rng).astype(np.float32)
    return image


def augmented_batch(photos: list[np.ndarray], imgsz: int, batch: int, rng: np.random.Generator,
                    mixup: float = 0.0) -> torch.Tensor:
    """[batch, 3, imgsz, imgsz] RGB floats in [0, 1]; ``mixup``: the share of samples blended with a second."""
    images = np.stack([mixed(photos, imgsz, rng, mixup)[..., ::-1].transpose(2, 0, 1) for _ in range(batch)])
    return torch.from_numpy(np.ascontiguousarray(images)) / 255.0
