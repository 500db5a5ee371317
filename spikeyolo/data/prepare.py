"""Turn a VOC folder, a COCO JSON or a YOLO dataset yaml into a dataset yaml the ultralytics trainer reads.

VOC and COCO are written as YOLO txt labels under a cache directory (images are linked, never
copied, and the source dataset is never written to). A finished cache entry is reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import yaml

from spikeyolo.atomic import atomic_dir
from spikeyolo.data.coco import read_coco
from spikeyolo.data.images import IMAGE_SUFFIXES
from spikeyolo.data.yolo import read_yolo_labels
from spikeyolo.limits import MAX_CLASSES
from spikeyolo.data.records import LOGGER, BoxAudit, DatasetError, ImageRecord
from spikeyolo.data.voc import is_voc, read_voc, voc_class_names, voc_split_ids

CACHE_VERSION = 2


def default_cache_dir() -> Path:
    return Path(os.environ.get("SPIKEYOLO_CACHE", Path.home() / ".cache" / "spikeyolo")) / "datasets"


def _fingerprint(source: Path, files: list[Path]) -> str:
    h = hashlib.sha1(f"{CACHE_VERSION}:{source.resolve()}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def _yolo_line(cls: int, box, width: int, height: int) -> str:
    x1, y1, x2, y2 = box
    return (f"{cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")


def _write_split(root: Path, split: str, records: list[ImageRecord]) -> None:
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for r in records:
        link = images / f"{Path(r.path).stem}{Path(r.path).suffix.lower()}"
        link.symlink_to(Path(r.path).resolve())
        lines = [_yolo_line(b[0], b[1:], r.width, r.height) for b, hard in zip(r.boxes, r.difficult) if not hard]
        (labels / f"{link.stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def _write_cache(target: Path, splits: dict[str, list[ImageRecord]], names: list[str], meta: dict) -> Path:
    """Write the whole entry under a temporary name, then rename: no half-written cache, even on failure."""
    with atomic_dir(target) as tmp:
        for split, records in splits.items():
            _write_split(tmp, split, records)
        first = next(iter(splits))
        config = {"path": str(target), "train": f"images/{first}", "val": f"images/{list(splits)[-1]}",
                  "names": dict(enumerate(names))}
        if "test" in splits:
            config["test"] = "images/test"
        (tmp / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp / "source.json").write_text(json.dumps(meta, indent=2))
    return target / "data.yaml"


def _reuse(target: Path) -> Path | None:
    """A finished cache entry, with its box warnings repeated; None if there is none."""
    if not (target / "data.yaml").is_file():
        return None
    for source, audit in json.loads((target / "source.json").read_text()).get("audits", {}).items():
        BoxAudit(audit["skipped"], audit["clipped"], set(audit["files"])).report(source)
    return target / "data.yaml"


def _audits(found: dict[str, BoxAudit]) -> dict:
    for source, audit in found.items():
        audit.report(source)
    return {s: {"skipped": a.skipped, "clipped": a.clipped, "files": sorted(a.files)} for s, a in found.items()}


def _prepare_voc(root: Path, cache: Path, train_split: str, val_split: str) -> Path:
    ids = sorted(set(voc_split_ids(root, train_split)) | set(voc_split_ids(root, val_split)))
    xmls = [root / "Annotations" / f"{i}.xml" for i in ids]
    target = cache / f"{root.name}-voc-{_fingerprint(root, xmls)}"
    if reused := _reuse(target):
        return reused
    names = voc_class_names(root, ids)
    splits, found = {}, {}
    for split in (train_split, val_split):
        records, found[f"{root}/{split}"] = read_voc(root, split, names)
        splits["train" if split == train_split else "test"] = records
    meta = {"format": "voc", "source": str(root.resolve()), "splits": {"train": train_split, "test": val_split},
            "audits": _audits(found)}
    return _write_cache(target, splits, names, meta)


def _prepare_coco(json_path: Path, cache: Path) -> Path:
    target = cache / f"{json_path.stem}-coco-{_fingerprint(json_path, [json_path])}"
    LOGGER.warning(f"{json_path} is a single split: it serves as both train and val")
    if reused := _reuse(target):
        return reused
    records, names, category_ids, audit = read_coco(json_path)
    meta = {"format": "coco", "source": str(json_path.resolve()), "category_ids": category_ids,
            "audits": _audits({str(json_path): audit})}
    return _write_cache(target, {"val": records}, names, meta)


def coco_root_files(root: Path) -> dict[str, Path] | None:
    """A COCO root (annotations/instances_train*.json and instances_val*.json, images in train*/ and val*/), as
    COCO 2017 ships: {'train': json, 'val': json}; None if ``root`` is not one."""
    folder = root / "annotations"
    found = {split: sorted(folder.glob(f"instances_{split}*.json")) for split in ("train", "val")}
    return {split: files[0] for split, files in found.items()} if folder.is_dir() and all(found.values()) else None


def _prepare_coco_root(root: Path, files: dict[str, Path], cache: Path) -> Path:
    """Train on the train JSON, validate on the val JSON (the COCO protocol); their categories must agree."""
    target = cache / f"{root.name}-cocoroot-{_fingerprint(root, list(files.values()))}"
    if reused := _reuse(target):
        return reused
    splits, audits, categories = {}, {}, {}
    for split, path in files.items():
        records, names, category_ids, audits[str(path)] = read_coco(path)
        splits[split], categories[split] = records, (names, category_ids)
    if categories["train"] != categories["val"]:
        raise DatasetError(f"{files['train']} and {files['val']} list different categories: a COCO root needs the "
                           "same categories in both")
    names, category_ids = categories["val"]
    meta = {"format": "coco", "source": str(files["val"].resolve()), "category_ids": category_ids,
            "sources": {split: str(path.resolve()) for split, path in files.items()}, "audits": _audits(audits)}
    return _write_cache(target, splits, names, meta)


def _read_yolo_yaml(path: Path) -> tuple[dict, Path]:
    """The yaml's config and its dataset root, checked: train, val and names present, names strings."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DatasetError(f"cannot read dataset yaml {path}: {str(err).splitlines()[0]}") from None
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
    with atomic_dir(target) as tmp:
        entries = {}
        for split, folders in splits.items():
            entries[split] = [_link_split(tmp, f"{split}{i}", folder, len(config["names"]))
                              for i, folder in enumerate(folders)]
        out = {"path": str(target), **{s: e[0] if len(e) == 1 else e for s, e in entries.items()},
               "names": dict(enumerate(config["names"]))}
        (tmp / "data.yaml").write_text(yaml.safe_dump(out, sort_keys=False))
        (tmp / "source.json").write_text(json.dumps({"format": "yaml", "source": str(path.resolve())}, indent=2))
    return target / "data.yaml"


def _label_of(image: Path) -> Path:
    """Where ultralytics looks for an image's label: …/labels/… for …/images/… (the last one), suffix .txt."""
    text = str(image)
    marker = f"{os.sep}images{os.sep}"
    if marker in text:
        head, _, tail = text.rpartition(marker)
        text = f"{head}{os.sep}labels{os.sep}{tail}"
    return Path(text).with_suffix(".txt")


def _link_split(tmp: Path, name: str, folder: Path, classes: int) -> str:
    """images/NAME/… links to the split's images and labels/NAME/… copies of their labels, in the cache, so that
    ultralytics (which resolves folders) writes its labels caches here; an image list file (.txt) is used as it is."""
    if not folder.is_dir():
        return str(folder)
    for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        relative = image.relative_to(folder)
        link = tmp / "images" / name / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(image.resolve())
        label = _label_of(image)
        if label.is_file():
            read_yolo_labels(label, classes)  # a broken label is one DatasetError naming its file and line
            copy = tmp / "labels" / name / relative.with_suffix(".txt")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(label, copy)
    return f"images/{name}"


def prepare_dataset(source: str | Path, cache_dir: str | Path | None = None,
                    train_split: str = "trainval", val_split: str = "test") -> Path:
    """Path to an ultralytics dataset yaml for ``source`` (VOC dir, COCO json or dataset yaml)."""
    source = Path(source).expanduser()
    if not source.exists():
        raise DatasetError(f"dataset {source} not found: pass a VOC folder, a COCO instances JSON or a dataset yaml")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if source.is_dir() and (files := coco_root_files(source)):
        return _prepare_coco_root(source, files, cache)
    if source.is_dir() and is_voc(source):
        if not (source / "ImageSets" / "Main" / f"{val_split}.txt").is_file():
            val_split = "val"
        return _prepare_voc(source, cache, train_split, val_split)
    if source.suffix == ".json":
        return _prepare_coco(source, cache)
    if source.suffix in (".yaml", ".yml"):
        return _prepare_yaml(source, cache)
    raise DatasetError(f"{source} is not a dataset spikeyolo reads: pass a VOC folder (Annotations/, "
                       f"ImageSets/Main/), a COCO instances .json or an ultralytics dataset .yaml")
