"""PASCAL VOC reader: Annotations/*.xml, JPEGImages/, ImageSets/Main/<split>.txt."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

from spikeyolo.data.records import BoxAudit, DatasetError, ImageRecord, checked_box, inside

VOC_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")  # what VOC-style sets use


def is_voc(root: Path) -> bool:
    return (root / "Annotations").is_dir() and (root / "ImageSets" / "Main").is_dir()


def voc_split_ids(root: Path, split: str) -> list[str]:
    """The ids of a split file; duplicates, ids that are paths and missing annotations are one DatasetError."""
    path = root / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file() or Path(split).name != split:
        raise DatasetError(f"VOC split file {path} not found: pass a split that exists in ImageSets/Main")
    try:
        ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read VOC split file {path}: {err}") from None
    seen = set()
    for image_id in ids:
        inside(root / "Annotations", f"{image_id}.xml", str(path))
        if image_id in seen:
            raise DatasetError(f"{path} lists id {image_id} twice: each image once per split file")
        seen.add(image_id)
    missing = [i for i in ids if not (root / "Annotations" / f"{i}.xml").is_file()]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} id(s) have no annotation, e.g. {root / 'Annotations'}/"
                           f"{missing[0]}.xml: restore the files or drop the ids")
    return ids


def _parse(xml_path: Path) -> ET.Element:
    try:
        return ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as err:
        raise DatasetError(f"cannot read VOC annotation {xml_path}: {err}; fix or remove the file") from err


def voc_class_names(root: Path, ids: list[str]) -> list[str]:
    """Class names found in the given annotations, sorted (VOC's own 20 classes are alphabetical too)."""
    names = {(obj.findtext("name") or "").strip() for i in ids
             for obj in _parse(root / "Annotations" / f"{i}.xml").iter("object")}
    return sorted(n for n in names if n)


def _image_path(root: Path, image_id: str, xml: ET.Element) -> Path:
    filename = (xml.findtext("filename") or "").strip()
    named = inside(root / "JPEGImages", filename, f"{root / 'Annotations'}/{image_id}.xml") if filename else None
    if named is not None and named.is_file():
        return named
    for suffix in VOC_IMAGE_SUFFIXES:
        candidate = root / "JPEGImages" / f"{image_id}{suffix}"
        if candidate.is_file():
            return candidate
    raise DatasetError(f"no image for VOC id {image_id} in {root / 'JPEGImages'}: restore the image or drop the id")


def read_voc(root: Path, split: str, names: list[str]) -> tuple[list[ImageRecord], BoxAudit]:
    """Read one split; boxes are checked against the real image size (the XML's may be wrong)."""
    audit = BoxAudit()
    records = []
    for image_id in voc_split_ids(root, split):
        xml_path = root / "Annotations" / f"{image_id}.xml"
        xml = _parse(xml_path)
        image = _image_path(root, image_id, xml)
        try:
            with Image.open(image) as im:
                width, height = im.size
        except (OSError, SyntaxError, ValueError, ImportError, Image.DecompressionBombError) as err:
            raise DatasetError(f"{image} (VOC id {image_id}) is not an image spikeyolo can read ({err}): replace "
                               "or drop it") from None
        record = ImageRecord(image, width, height, image_id=image_id)
        for obj in xml.iter("object"):
            name = (obj.findtext("name") or "").strip()
            bnd = obj.find("bndbox")
            coords = None if bnd is None else [bnd.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
            box = checked_box(coords, width, height, audit, xml_path.name) if name in names else None
            if box is not None:
                record.boxes.append((names.index(name), *box))
                record.difficult.append((obj.findtext("difficult") or "0").strip() == "1")
        records.append(record)
    return records, audit
