"""Turn any dataset layout spikeyolo reads (``layouts``) into a dataset yaml the ultralytics trainer reads.

VOC and COCO are written as YOLO txt labels under a cache directory (images are linked, never
copied, and the source dataset is never written to). A finished cache entry is reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import yaml

from spikeyolo.atomic import atomic_dir
from spikeyolo.data.coco import read_coco
from spikeyolo.data.images import IMAGE_SUFFIXES
from spikeyolo.data.yolo import label_path, read_yolo_labels
from spikeyolo.limits import MAX_CLASSES
from spikeyolo.data.records import LOGGER, BoxAudit, DatasetError, ImageRecord, read_dataset_yaml
from spikeyolo.data.layouts import Layout, find_layout
from spikeyolo.data.voc import read_voc_part, voc_part_names

CACHE_VERSION = 3


def default_cache_dir() -> Path:
    return Path(os.environ.get("SPIKEYOLO_CACHE", Path.home() / ".cache" / "spikeyolo")) / "datasets"


def _fingerprint(source: Path, files: list[Path], splits: dict | None = None) -> str:
    h = hashlib.sha1(f"{CACHE_VERSION}:{source.resolve()}:{json.dumps(splits, sort_keys=True)}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def _yolo_line(cls: int, box, width: int, height: int) -> str:
    x1, y1, x2, y2 = box
    return (f"{cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")


def _write_split(root: Path, role: str, records: list[ImageRecord]) -> None:
    images, labels = root / "images" / role, root / "labels" / role
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for r in records:
        link = images / f"{Path(r.path).stem}{Path(r.path).suffix.lower()}"
        if link.is_symlink() or (labels / f"{link.stem}.txt").exists():
            raise DatasetError(f"two images of the {role} split are named {link.stem} (one is {r.path}): image "
                               "names must be unique within a split")
        link.symlink_to(Path(r.path).resolve())
        lines = [_yolo_line(b[0], b[1:], r.width, r.height) for b, hard in zip(r.boxes, r.difficult) if not hard]
        (labels / f"{link.stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def _write_cache(target: Path, splits: dict[str, list[ImageRecord]], names: list[str], meta: dict) -> Path:
    """Write the whole entry under a temporary name, then rename: no half-written cache, even on failure."""
    with atomic_dir(target) as tmp:
        for role, records in splits.items():
            _write_split(tmp, role, records)
        config = {"path": str(target), **{role: f"images/{role}" for role in splits}, "names": dict(enumerate(names))}
        (tmp / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp / "source.json").write_text(json.dumps(meta, indent=2))
    return target / "data.yaml"


def _reuse(target: Path) -> Path | None:
    """A finished cache entry, with its box warnings repeated; None if there is none."""
    if not (target / "data.yaml").is_file():
        return None
    for source, audit in json.loads((target / "source.json").read_text()).get("audits", {}).items():
        BoxAudit.from_dict(audit).report(source)
    return target / "data.yaml"


def _summary(layout: Layout, splits: dict[str, list[ImageRecord]], names: list[str]) -> dict:
    """Per role: the split it was read from, its images, and its boxes per class (difficult ones counted apart)."""
    summary = {}
    for role, records in splits.items():
        boxes = Counter(names[b[0]] for r in records for b in r.boxes)
        summary[role] = {"split": layout.split_names()[role], "images": len(records),
                         "boxes": {name: boxes[name] for name in names},
                         "difficult": sum(sum(r.difficult) for r in records)}
    return summary


def _read_parts(layout: Layout) -> tuple[dict, list[str], list[int] | None, dict[str, BoxAudit]]:
    """Each distinct part read once: its records, the class names and COCO category ids (the same in every
    split's JSON), and the box audit of each part."""
    parts = list(dict.fromkeys(part for parts in layout.splits.values() for part in parts))
    names = voc_part_names(parts) if layout.format == "voc" else None
    records, audits, classes = {}, {}, {}
    for part in parts:
        audit = audits[f"{layout.source}:{part.name}"] = BoxAudit()
        if layout.format == "voc":
            records[part] = read_voc_part(part, names, audit)
        else:
            records[part], part_names, category_ids, audits[f"{layout.source}:{part.name}"] = \
                read_coco(part.annotations, part.images)
            classes[part.name] = (part_names, category_ids)
    category_ids = None
    if classes:
        (first, (names, category_ids)), *others = classes.items()
        for name, other in others:
            if other != (names, category_ids):
                raise DatasetError(f"{layout.source}: splits {first} and {name} list different categories: every "
                                   "split needs the same categories")
    if not names:
        raise DatasetError(f"{layout.source}: no object classes found in its annotations")
    return records, names, category_ids, audits


def _prepare_parts(layout: Layout, cache: Path) -> Path:
    """VOC or COCO parts → YOLO labels under the cache, with source.json saying where each split came from."""
    parts = [part for parts in layout.splits.values() for part in parts]
    files = sorted({part.annotations for part in parts}) if layout.format == "coco" else \
        [part.annotations / f"{i}.xml" for part in parts for i in part.ids]
    target = cache / f"{layout.source.stem}-{layout.format}-{_fingerprint(layout.source, files, layout.split_names())}"
    if reused := _reuse(target):
        return reused
    records, names, category_ids, audits = _read_parts(layout)
    splits = {role: [r for part in parts for r in records[part]] for role, parts in layout.splits.items()}
    meta = {"format": layout.format, "kind": layout.kind, "source": str(layout.source.resolve()),
            "splits": {role: [part.as_dict() for part in parts] for role, parts in layout.splits.items()},
            "category_ids": category_ids, "summary": _summary(layout, splits, names), "audits": _audits(audits),
            "notes": layout.notes}
    return _write_cache(target, splits, names, meta)


def _audits(found: dict[str, BoxAudit]) -> dict:
    for source, audit in found.items():
        audit.report(source)
    return {source: audit.as_dict() for source, audit in found.items()}


def _read_yolo_yaml(path: Path) -> tuple[dict, Path]:
    """The yaml's config and its dataset root, checked: train, val and names present, names strings."""
    config = read_dataset_yaml(path)
    missing = [k for k in ("train", "val", "names") if not isinstance(config, dict) or not config.get(k)]
    if missing:
        raise DatasetError(f"dataset yaml {path} lacks {', '.join(missing)}: it needs train, val and names "
                           f"(ultralytics format)")
    names = config["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) and all(
        isinstance(k, int) for k in names) else names
    if not isinstance(names, list) or not 0 < len(names) <= MAX_CLASSES or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"dataset yaml {path}: names must be a list (or an index → name mapping) of class names")
    config["names"] = names
    root = Path(str(config.get("path") or "."))
    root = root if root.is_absolute() else path.parent / root
    return config, root


def _split_folders(path: Path, config: dict, root: Path, split: str) -> list[Path]:
    entries = config[split] if isinstance(config[split], list) else [config[split]]
    folders = []
    for entry in entries:
        folder = Path(str(entry)) if Path(str(entry)).is_absolute() else root / str(entry)
        if not folder.exists():
            raise DatasetError(f"dataset yaml {path}: {split} split {folder} not found: spikeyolo never downloads "
                               f"datasets (a download: entry is not run); put the images there")
        folders.append(folder.resolve())
    return folders


def _prepare_yaml(path: Path, cache: Path) -> Path:
    """A copy of an ultralytics dataset yaml in the cache, without ``download`` (never run), whose image and label
    folders are links: ultralytics then writes its labels.cache files into the cache, not into the dataset."""
    config, root = _read_yolo_yaml(path)
    splits = {s: _split_folders(path, config, root, s) for s in ("train", "val", "test") if config.get(s)}
    target = cache / f"{path.stem}-yaml-{_fingerprint(path, [path])}"
    if reused := _reuse(target):
        return reused
    names = config["names"]
    with atomic_dir(target) as tmp:
        entries, summary = {}, {}
        for split, folders in splits.items():
            counts = summary[split] = {"split": split, "images": 0, "boxes": Counter(), "difficult": 0}
            entries[split] = [_link_split(tmp, f"{split}{i}", folder, names, counts)
                              for i, folder in enumerate(folders)]
            counts["boxes"] = {name: counts["boxes"][name] for name in names}
        out = {"path": str(target), **{s: e[0] if len(e) == 1 else e for s, e in entries.items()},
               "names": dict(enumerate(names))}
        (tmp / "data.yaml").write_text(yaml.safe_dump(out, sort_keys=False))
        meta = {"format": "yaml", "kind": "ultralytics dataset yaml", "source": str(path.resolve()),
                "summary": summary}
        (tmp / "source.json").write_text(json.dumps(meta, indent=2))
    return target / "data.yaml"


def _link_split(tmp: Path, name: str, folder: Path, names: list[str], counts: dict) -> str:
    """images/NAME/… links to the split's images and labels/NAME/… copies of their labels, in the cache, so that
    ultralytics (which resolves folders) writes its labels caches here; an image list file (.txt) is used as it is.
    ``counts`` gathers images and boxes per class."""
    if not folder.is_dir():
        return str(folder)
    for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        relative = image.relative_to(folder)
        link = tmp / "images" / name / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(image.resolve())
        counts["images"] += 1
        label = label_path(image)
        if label.is_file():  # a broken label is one DatasetError naming its file and line
            counts["boxes"].update(names[int(row[0])] for row in read_yolo_labels(label, len(names)))
            copy = tmp / "labels" / name / relative.with_suffix(".txt")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(label, copy)
    return f"images/{name}"


def prepare_dataset(source: str | Path, cache_dir: str | Path | None = None, train_split: str | None = None,
                    val_split: str | None = None) -> Path:
    """Path to an ultralytics dataset yaml for ``source`` (any layout ``find_layout`` reads), written once under the
    cache with a source.json that says what was read; ``train_split`` / ``val_split`` choose the layout's splits."""
    layout = find_layout(Path(source).expanduser(), train_split, val_split)
    for note in layout.notes:
        LOGGER.warning(note)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if layout.format == "yaml":
        return _prepare_yaml(layout.source, cache)
    return _prepare_parts(layout, cache)
