"""Shared fixtures: a small generated VOC dataset (coloured shapes on noise) and paths to real data."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image

# property-based tests: the same examples on every machine and run (a found bug is fixed, not re-rolled away)
settings.register_profile("spikeyolo", derandomize=True, database=None)
settings.load_profile("spikeyolo")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
needs_shared = pytest.mark.skipif(not (SHARED / "bccd").is_dir() or not (SHARED / "coco-tiny").is_dir(),
                                  reason="the real datasets (../shared/datasets) are not on this machine")
CLASSES = ("square", "bar")


def assert_runs_in_triton_interpreter(code: str) -> None:
    """Run ``code`` (which prints "ok" when its checks pass) in a process with Triton's CPU interpreter."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    # -W error: a Triton failure must not pass as the torch fallback's (equal) result
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep dataset caches and ultralytics settings out of the user's home."""
    os.environ["SPIKEYOLO_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def _run_elsewhere(tmp_path_factory, monkeypatch):
    """Each test runs in a folder of its own: a command's default runs/ folder never lands in the repository."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def _voc_xml(name: str, width: int, height: int, objects) -> str:
    objs = "".join(
        f"<object><name>{c}</name><difficult>{int(d)}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>" for c, x1, y1, x2, y2, d in objects)
    return (f"<annotation><filename>{name}.jpg</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{objs}</annotation>")


def make_voc(root: Path, count: int = 16, size: int = 128, seed: int = 0, degenerate: bool = True) -> Path:
    """A VOC dataset of bright squares and bars; with ``degenerate``, image 0 carries two broken boxes."""
    rng = np.random.default_rng(seed)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"img{i:03d}" for i in range(count)]
    for i, image_id in enumerate(ids):
        pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        objects = []
        for cls in CLASSES * 2:
            w = int(rng.integers(16, 32))
            h = w if cls == "square" else w // 3
            x1, y1 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            pixels[y1:y1 + h, x1:x1 + w] = (230, 40, 40) if cls == "square" else (40, 40, 230)
            objects.append((cls, x1, y1, x1 + w, y1 + h, False))
        if degenerate and i == 0:
            objects += [("square", 50, 50, 50, 70, False), ("bar", 10, 10, 5, 5, False)]
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        (root / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(image_id, size, size, objects))
    split = count * 3 // 4
    (root / "ImageSets/Main/trainval.txt").write_text("\n".join(ids[:split]) + "\n")
    (root / "ImageSets/Main/test.txt").write_text("\n".join(ids[split:]) + "\n")
    return root


@pytest.fixture(scope="session")
def voc_dataset(tmp_path_factory) -> Path:
    return make_voc(tmp_path_factory.mktemp("voc") / "shapes")


def bccd_subset(root: Path, train: int = 16, test: int = 8) -> Path:
    """A VOC view of the first BCCD images: links to the real files, our own ImageSets."""
    source = SHARED / "bccd"
    if not source.is_dir():
        pytest.skip("BCCD (../shared/datasets/bccd) is not on this machine")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for sub in ("Annotations", "JPEGImages"):
        (root / sub).symlink_to(source / sub)
    ids = [line.strip() for line in (source / "ImageSets/Main/trainval.txt").read_text().split() if line.strip()]
    tests = [line.strip() for line in (source / "ImageSets/Main/test.txt").read_text().split() if line.strip()]
    (root / "ImageSets/Main/trainval.txt").write_text("\n".join(ids[:train]) + "\n")
    (root / "ImageSets/Main/test.txt").write_text("\n".join(tests[:test]) + "\n")
    return root


@pytest.fixture(scope="session")
def bccd_small(tmp_path_factory) -> Path:
    return bccd_subset(tmp_path_factory.mktemp("bccd") / "bccd-small")
