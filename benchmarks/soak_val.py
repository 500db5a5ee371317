"""`spikeyolo val` over thousands of images keeps its memory bounded: a generated VOC set, resident memory sampled.

    python benchmarks/soak_val.py --images 5000 --out runs/soak/val

Generates ``--images`` 320×320 images of coloured discs (the BCCD classes' names, so that the shipped weights' names
match) as a VOC folder under --out (every image in the test split), then runs the same evaluation as
`spikeyolo val --weights weights/bccd-yolov8n-qcfs.safetensors --timesteps 1,2,4` (ANN and SNN, cost counted) while
a thread samples the process's resident set every second. Writes rss.json and rss.png (RSS over time) into --out
and prints the growth between the end of the first tenth of the run and the end. The mAP is meaningless (discs are
not blood cells): the point is memory and completeness. Not a timed test: a benchmark run by hand.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

from spikeyolo.eval.val import validate

NAMES = ("Platelets", "RBC", "WBC")


def generate_voc(root: Path, count: int, size: int = 320, seed: int = 0) -> Path:
    """``count`` images with 1–8 discs each and their VOC annotations; ImageSets/Main/test.txt lists them all."""
    rng = np.random.default_rng(seed)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"disc{i:06d}" for i in range(count)]
    for image_id in ids:
        pixels = rng.integers(150, 200, (size, size, 3), dtype=np.uint8)
        objects = []
        for _ in range(int(rng.integers(1, 9))):
            cls, radius = int(rng.integers(0, 3)), int(rng.integers(8, 40))
            x, y = (int(v) for v in rng.integers(radius, size - radius, 2))
            cv2.circle(pixels, (x, y), radius, (80 * cls, 60, 200 - 60 * cls), -1)
            objects.append(f"<object><name>{NAMES[cls]}</name><difficult>0</difficult><bndbox><xmin>{x - radius}"
                           f"</xmin><ymin>{y - radius}</ymin><xmax>{x + radius}</xmax><ymax>{y + radius}</ymax>"
                           "</bndbox></object>")
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), pixels)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{size}</width><height>{size}</height>"
            f"<depth>3</depth></size>{''.join(objects)}</annotation>")
    (root / "ImageSets/Main/test.txt").write_text("\n".join(ids) + "\n")
    (root / "ImageSets/Main/trainval.txt").write_text("\n".join(ids[:16]) + "\n")
    return root


class Sampler(threading.Thread):
    """(seconds, RSS MB) every ``interval`` seconds until stopped."""

    def __init__(self, interval: float = 1.0):
        super().__init__(daemon=True)
        self.interval, self.samples, self.halt = interval, [], threading.Event()
        self.process, self.start_time = psutil.Process(), time.perf_counter()

    def run(self):
        while not self.halt.wait(self.interval):
            self.samples.append((time.perf_counter() - self.start_time, self.process.memory_info().rss / 2**20))


def plot(samples: list, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds, mb = zip(*samples)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(seconds, mb)
    axis.set_xlabel("seconds")
    axis.set_ylabel("resident memory (MB)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--weights", default="weights/bccd-yolov8n-qcfs.safetensors")
    parser.add_argument("--out", type=Path, default=Path("runs/soak/val"))
    args = parser.parse_args()
    data = args.out / "discs"
    if not (data / "ImageSets/Main/test.txt").is_file():
        generate_voc(data, args.images)
    sampler = Sampler()
    sampler.start()
    report = validate(args.weights, data, timesteps=(1, 2, 4), device="cpu")
    sampler.halt.set()
    sampler.join()
    samples = sampler.samples
    tenth = next(mb for seconds, mb in samples if seconds >= samples[-1][0] / 10)
    result = {"images": report["images"], "seconds": samples[-1][0], "samples": samples,
              "rss_after_first_tenth_mb": tenth, "rss_last_mb": samples[-1][1], "rss_peak_mb": max(m for _, m in samples),
              "command": f"python benchmarks/soak_val.py --images {args.images} --out {args.out}"}
    (args.out / "rss.json").write_text(json.dumps(result, indent=1))
    plot(samples, args.out / "rss.png", f"spikeyolo val, {report['images']} images, ANN and SNN to T = 4")
    print(f"{report['images']} images evaluated in {result['seconds']:.0f} s; RSS {tenth:.0f} MB after the first "
          f"tenth, {result['rss_last_mb']:.0f} MB at the end (growth {result['rss_last_mb'] - tenth:.1f} MB), peak "
          f"{result['rss_peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
