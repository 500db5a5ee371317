"""Render the demo videos: a camera panning across a mosaic of four photos.

demo/bccd_pan.mp4: BCCD test images. The window is 640×480, the size of the BCCD images, so cells appear at the
scale the model was trained on. demo/everyday_pan.mp4 (``--photos``): four oi5 val photos (Open Images, CC BY 2.0
by their authors, via oi5's CC BY 4.0 export; none of them seen in training), each cropped to fill a 640×480 tile.
Usage: python demo/make_demo_video.py [--data ../shared/datasets/bccd] [--out demo/bccd_pan.mp4]
       python demo/make_demo_video.py --photos EVERYDAY --out demo/everyday_pan.mp4
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def mosaic(root: Path, count: int = 4) -> np.ndarray:
    ids = (root / "ImageSets/Main/test.txt").read_text().split()[:count]
    tiles = [cv2.resize(cv2.imread(str(root / "JPEGImages" / f"{i}.jpg")), (640, 480)) for i in ids]
    return np.vstack([np.hstack(tiles[0:2]), np.hstack(tiles[2:4])])


EVERYDAY = ["894b520348994f89.jpg", "4d5bb651b8accaf1.jpg", "a57053e685cd731b.jpg", "9a94771ecbe28f1a.jpg"]


def filled(image: np.ndarray, size=(640, 480)) -> np.ndarray:
    """The photo scaled to cover ``size`` and cropped to it about its centre."""
    zoom = max(size[0] / image.shape[1], size[1] / image.shape[0])
    image = cv2.resize(image, (round(image.shape[1] * zoom), round(image.shape[0] * zoom)), interpolation=cv2.INTER_AREA)
    top, left = (image.shape[0] - size[1]) // 2, (image.shape[1] - size[0]) // 2
    return image[top:top + size[1], left:left + size[0]]


def photo_mosaic(files: list[Path]) -> np.ndarray:
    tiles = [filled(cv2.imread(str(path))) for path in files]
    return np.vstack([np.hstack(tiles[0:2]), np.hstack(tiles[2:4])])


def pan_path(frames: int, width: int, height: int, window=(640, 480)) -> list[tuple[int, int]]:
    """A loop around the mosaic: right along the top, down, left along the bottom, up."""
    max_x, max_y = width - window[0], height - window[1]
    corners = [(0, 0), (max_x, 0), (max_x, max_y), (0, max_y), (0, 0)]
    per_leg = frames // 4
    return [(int(a[0] + (b[0] - a[0]) * k / per_leg), int(a[1] + (b[1] - a[1]) * k / per_leg))
            for a, b in zip(corners, corners[1:]) for k in range(per_leg)]


def render(data: Path, out: Path, frames: int = 48, fps: float = 12.0, photos: list[Path] | None = None) -> Path:
    canvas = photo_mosaic(photos) if photos else mosaic(data)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for x, y in pan_path(frames, canvas.shape[1], canvas.shape[0]):
        writer.write(canvas[y:y + 480, x:x + 640])
    writer.release()
    tmp.replace(out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared/datasets/bccd"))
    parser.add_argument("--out", default=str(HERE / "bccd_pan.mp4"))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--photos", nargs="*", help="four photos instead of BCCD's (EVERYDAY: the four oi5 val photos "
                        "of demo/everyday_pan.mp4, read from --oi5)")
    parser.add_argument("--oi5", default=str(HERE.parent.parent / "shared/datasets/oi5"))
    args = parser.parse_args()
    photos = None
    if args.photos is not None:
        names = EVERYDAY if args.photos in ([], ["EVERYDAY"]) else args.photos
        photos = [p if Path(p).is_file() else Path(args.oi5) / "val2017" / p for p in map(Path, names)]
    print(render(Path(args.data), Path(args.out), args.frames, photos=photos))
