"""COCO instances-JSON reader (original category ids kept for evaluation and export)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from spikeyolo.data.images import IMAGE_SUFFIXES
from spikeyolo.data.records import BoxAudit, DatasetError, ImageRecord, checked_box, inside
from spikeyolo.limits import MAX_CLASSES, MAX_IMAGE_SIDE


def load_coco_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise DatasetError(f"cannot read COCO annotation file {path}: {err}; pass a valid instances JSON") from None
    if not isinstance(data, dict):
        raise DatasetError(f"COCO file {path} holds a {type(data).__name__}, not an object with images, "
                           "annotations and categories: pass an instances JSON")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DatasetError(f"COCO file {path} lacks {', '.join(missing)}: pass an instances JSON")
    if not data["images"]:
        raise DatasetError(f"COCO file {path} lists no images: pass an instances JSON with images")
    _check_entries(path, data["images"], {"id": int, "file_name": str, "width": int, "height": int}, "image")
    _check_entries(path, data["categories"], {"id": int, "name": str}, "category")
    _check_entries(path, data["annotations"], {"image_id": int, "category_id": int}, "annotation")
    for key, entries in (("id", data["images"]), ("file_name", data["images"]), ("id", data["categories"])):
        twice = next((v for v, n in Counter(entry[key] for entry in entries).items() if n > 1), None)
        if twice is not None:
            raise DatasetError(f"COCO file {path}: {key} {twice!r} appears more than once: each must be unique")
    for image in data["images"]:
        if not (0 < image["width"] <= MAX_IMAGE_SIDE and 0 < image["height"] <= MAX_IMAGE_SIDE):
            raise DatasetError(f"COCO file {path}: image {image['id']} has size {image['width']}x{image['height']} "
                               f"(each side must be in 1..{MAX_IMAGE_SIDE})")
    return data


def _check_entries(path: Path, entries: list, fields: dict, kind: str) -> None:
    """Every entry an object with these fields of these types (ints are not bools, ids not strings)."""
    for n, entry in enumerate(entries):
        bad = [k for k, t in fields.items() if not isinstance(entry, dict) or not isinstance(entry.get(k), t)
               or isinstance(entry.get(k), bool)]
        if bad:
            shown = entry.get("id", n) if isinstance(entry, dict) else n
            raise DatasetError(f"COCO file {path}: {kind} {shown!r} needs {', '.join(bad)} as "
                               f"{'/'.join(fields[k].__name__ for k in bad)}: fix the file")


def coco_image_dir(json_path: Path, data: dict) -> Path:
    """Where the images are: <root>/<split> for <root>/annotations/instances_<split>.json, <root>/images, or beside
    the file (a Roboflow export); the folder that holds most of the listed files."""
    split = json_path.stem.replace("instances_", "")
    candidates = [json_path.parent.parent / split, json_path.parent.parent / "images", json_path.parent]
    sample = [img["file_name"] for img in data["images"][:50]]
    found = [sum((folder / name).is_file() for name in sample) for folder in candidates]
    if max(found) == 0:
        raise DatasetError(f"images of {json_path} not found (looked for {sample[0]} in ../{split}, ../images and "
                           f"beside the file): keep them in one of those folders")
    return candidates[found.index(max(found))]


def check_images_present(json_path: Path, data: dict, folder: Path) -> None:
    """Every image the JSON lists is a file in ``folder``; else one DatasetError: how many are missing, one example,
    and a file that is there (an export whose file names differ from its JSON shows it at once)."""
    missing = [img["file_name"] for img in data["images"] if not (folder / img["file_name"]).is_file()]
    if missing:
        listed = {img["file_name"] for img in data["images"]}
        unlisted = next((p.name for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
                         and p.name not in listed), None)
        there = f"; the folder has e.g. {unlisted!r}, which the JSON does not list" if unlisted else ""
        raise DatasetError(f"{json_path}: {len(missing)} of {len(data['images'])} listed image(s) are not in {folder}, "
                           f"e.g. {missing[0]!r}{there}: the JSON and the image files must match")


def class_categories(data: dict, where: Path) -> list[dict]:
    """The categories that are classes, by id: a Roboflow export's group category (the supercategory of others,
    with no boxes of its own, e.g. id 0 'cells') is not a class. Linear in the categories; at most MAX_CLASSES."""
    used = {ann["category_id"] for ann in data["annotations"]}
    members: dict[str, set] = {}  # supercategory → the names of its categories
    for c in data["categories"]:
        if isinstance(c.get("supercategory"), str):
            members.setdefault(c["supercategory"], set()).add(c["name"])
    classes = sorted((c for c in data["categories"]
                      if c["id"] in used or not members.get(c["name"], set()) - {c["name"]}), key=lambda c: c["id"])
    if not 0 < len(classes) <= MAX_CLASSES:
        raise DatasetError(f"COCO file {where}: {len(classes)} classes (1..{MAX_CLASSES} are read)")
    return classes


def box_corners(bbox) -> tuple | None:
    """(x1, y1, x2, y2) of a COCO ``bbox`` [x, y, w, h] of four numbers, else None (a box to skip; ``checked_box``
    then sorts out the non-finite and the empty)."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
        return None
    return bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]


def read_coco(json_path: Path, images: Path | None = None) -> tuple[list[ImageRecord], list[str], list[int], BoxAudit]:
    """Records with contiguous class indices, the names, and index → COCO category id."""
    data = load_coco_json(json_path)
    categories = class_categories(data, json_path)
    category_ids = [c["id"] for c in categories]
    index = {cid: i for i, cid in enumerate(category_ids)}
    for img in data["images"]:  # before any path is built from them
        inside(json_path.parent, img["file_name"], f"{json_path} image {img['id']}")
    folder = images or coco_image_dir(json_path, data)
    check_images_present(json_path, data, folder)
    records = {img["id"]: ImageRecord(folder / img["file_name"], img["width"], img["height"], image_id=img["id"])
               for img in data["images"]}
    audit = BoxAudit()
    for ann in data["annotations"]:
        where = f"{json_path.name}#ann{ann.get('id')}"
        record = records.get(ann.get("image_id"))
        if record is None or ann.get("category_id") not in index or ann.get("iscrowd", 0):
            audit.skip("image id not in images" if record is None else "category not in categories"
                       if ann.get("category_id") not in index else "crowd (left to the COCO evaluator)", where)
            continue
        box = checked_box(box_corners(ann.get("bbox")), record.width, record.height, audit, where)
        if box is not None:
            record.add((index[ann["category_id"]], *box), False, f"{json_path} image {record.image_id}")
    return list(records.values()), [c["name"] for c in categories], category_ids, audit
