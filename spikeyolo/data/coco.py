"""COCO instances-JSON reader (original category ids kept for evaluation and export)."""
from __future__ import annotations

import json
from pathlib import Path

from spikeyolo.data.records import BoxAudit, DatasetError, ImageRecord, checked_box


def load_coco_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"cannot read COCO annotation file {path}: {err}; pass a valid instances JSON") from err
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DatasetError(f"COCO file {path} lacks {', '.join(missing)}: pass an instances JSON")
    return data


def coco_image_dir(json_path: Path, data: dict) -> Path:
    """Where the images are: <root>/<split> for <root>/annotations/instances_<split>.json, else beside it."""
    split = json_path.stem.replace("instances_", "")
    first = data["images"][0]["file_name"] if data["images"] else ""
    for folder in (json_path.parent.parent / split, json_path.parent.parent / "images", json_path.parent):
        if (folder / first).is_file():
            return folder
    raise DatasetError(f"images of {json_path} not found (looked for {first} in ../{split}, ../images and "
                       f"beside the file): keep them in one of those folders")


def read_coco(json_path: Path) -> tuple[list[ImageRecord], list[str], list[int], BoxAudit]:
    """Records with contiguous class indices, the names, and index → COCO category id."""
    data = load_coco_json(json_path)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    category_ids = [c["id"] for c in categories]
    index = {cid: i for i, cid in enumerate(category_ids)}
    folder = coco_image_dir(json_path, data) if data["images"] else json_path.parent
    records = {img["id"]: ImageRecord(folder / img["file_name"], int(img["width"]), int(img["height"]),
                                      image_id=img["id"]) for img in data["images"]}
    audit = BoxAudit()
    for ann in data["annotations"]:
        record = records.get(ann.get("image_id"))
        if record is None or ann.get("category_id") not in index or ann.get("iscrowd", 0):
            continue
        bbox = ann.get("bbox") or [None] * 4
        corners = None if None in bbox else (bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3])
        box = checked_box(corners, record.width, record.height, audit, f"{json_path.name}#ann{ann.get('id')}")
        if box is not None:
            record.boxes.append((index[ann["category_id"]], *box))
            record.difficult.append(False)
    return list(records.values()), [c["name"] for c in categories], category_ids, audit
