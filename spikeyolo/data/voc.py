"""PASCAL VOC reader: XML annotations and their images, read as parts (a folder pair and a list of ids).

A part is one ImageSets/Main split of one VOC root (``VOC2007/trainval``), a VOC folder without ImageSets split
by image id, or a labelImg folder (XML beside the images). Several parts make one split (VOC07+12).
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from spikeyolo.data.records import BoxAudit, DatasetError, ImageRecord, checked_box, inside
from spikeyolo.limits import MAX_CLASSES

VOC_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")  # what VOC-style sets use
MAX_ID_LIST_BYTES = 100_000_000  # an ImageSets/Main file (VOC07+12 trainval: 0.2 MB)
HELD_OUT_ONE_IN = 5  # a VOC folder without ImageSets: an image is in 'val' when sha1(id) mod 5 == 0 (≈20 %)


@dataclass(frozen=True)
class VOCPart:
    """Images ``ids`` with annotations ``annotations/<id>.xml`` and images in ``images``; ``name`` for messages."""
    annotations: Path
    images: Path
    ids: tuple[str, ...]
    name: str

    def as_dict(self) -> dict:
        return {"annotations": str(self.annotations.resolve()), "images": str(self.images.resolve()),
                "ids": list(self.ids), "name": self.name}

    @classmethod
    def from_dict(cls, saved: dict) -> "VOCPart":
        return cls(Path(saved["annotations"]), Path(saved["images"]), tuple(saved["ids"]), saved["name"])


def is_voc(root: Path) -> bool:
    return (root / "Annotations").is_dir() and (root / "ImageSets" / "Main").is_dir()


def voc_split_ids(root: Path, split: str) -> list[str]:
    """The ids of a split file; duplicates, ids that are paths and missing annotations are one DatasetError."""
    path = root / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file() or Path(split).name != split:
        have = sorted(p.stem for p in (root / "ImageSets" / "Main").glob("*.txt") if "_" not in p.stem)
        raise DatasetError(f"VOC split file {path} not found: pass a split that exists in ImageSets/Main "
                           f"({', '.join(have) or 'none there'})")
    return listed_ids(path, root / "Annotations")


def listed_ids(path: Path, annotations: Path) -> list[str]:
    """The image ids of a list file (one a line); duplicates, ids that are paths and missing annotations are one
    DatasetError."""
    try:
        if path.stat().st_size > MAX_ID_LIST_BYTES:
            raise DatasetError(f"{path}: an id list larger than {MAX_ID_LIST_BYTES} bytes: not a VOC split file")
        ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read VOC split file {path}: {err}") from None
    seen = set()
    for image_id in ids:
        inside(annotations, f"{image_id}.xml", str(path))
        if image_id in seen:
            raise DatasetError(f"{path} lists id {image_id} twice: each image once per split file")
        seen.add(image_id)
    missing = [i for i in ids if not (annotations / f"{i}.xml").is_file()]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} id(s) have no annotation, e.g. {annotations}/"
                           f"{missing[0]}.xml: restore the files or drop the ids")
    return ids


def voc_split_part(root: Path, split: str, name: str | None = None) -> VOCPart:
    """One ImageSets/Main split of a VOC root."""
    return VOCPart(root / "Annotations", root / "JPEGImages", tuple(voc_split_ids(root, split)), name or split)


def held_out(image_id: str) -> bool:
    """The documented split of a VOC folder without ImageSets: stable under added or removed images."""
    return int(hashlib.sha1(image_id.encode()).hexdigest()[:8], 16) % HELD_OUT_ONE_IN == 0


def unsplit_part(annotations: Path, images: Path, split: str) -> VOCPart:
    """'train', 'val' or 'all' of the XML files in ``annotations`` (no ImageSets: split by ``held_out``)."""
    if split not in ("train", "val", "all"):
        raise DatasetError(f"{annotations} has no ImageSets/Main: its splits are train, val (1 image in "
                           f"{HELD_OUT_ONE_IN} by image id) and all; got {split!r}")
    ids = sorted(p.stem for p in annotations.glob("*.xml") if p.is_file())
    chosen = tuple(i for i in ids if split == "all" or held_out(i) == (split == "val"))
    if not chosen:
        raise DatasetError(f"{annotations}: split {split!r} has no images ({len(ids)} XML files in all): pass "
                           "--train-split all / --val-split all, or add ImageSets/Main/<split>.txt")
    return VOCPart(annotations, images, chosen, split)


def _parse(xml_path: Path) -> ET.Element:
    try:
        return ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as err:
        raise DatasetError(f"cannot read VOC annotation {xml_path}: {err}; fix or remove the file") from err


def voc_class_names(root: Path, ids: list[str]) -> list[str]:
    """Class names found in the given annotations of one root, sorted."""
    return voc_part_names([VOCPart(root / "Annotations", root / "JPEGImages", tuple(ids), "")])


def voc_part_names(parts: list[VOCPart]) -> list[str]:
    """Class names found in the parts' annotations, sorted (VOC's own 20 classes are alphabetical too)."""
    names = {(obj.findtext("name") or "").strip() for part in parts for i in part.ids
             for obj in _parse(part.annotations / f"{i}.xml").iter("object")}
    names.discard("")
    if len(names) > MAX_CLASSES:
        raise DatasetError(f"VOC annotations in {parts[0].annotations} name {len(names)} classes "
                           f"(at most {MAX_CLASSES} are read)")
    return sorted(names)


def _image_path(part: VOCPart, image_id: str, xml: ET.Element) -> Path:
    filename = (xml.findtext("filename") or "").strip()  # labelImg too writes the bare name here (the path apart)
    named = inside(part.images, filename, f"{part.annotations}/{image_id}.xml") if filename else None
    if named is not None and named.is_file():
        return named
    for suffix in VOC_IMAGE_SUFFIXES + tuple(s.upper() for s in VOC_IMAGE_SUFFIXES):
        candidate = part.images / f"{image_id}{suffix}"
        if candidate.is_file():
            return candidate
    raise DatasetError(f"no image for VOC id {image_id} in {part.images} (its XML names {filename or 'none'}): "
                       "restore the image or drop the id")


def _image_size(image: Path, image_id: str) -> tuple[int, int]:
    try:
        with Image.open(image) as im:
            return im.size
    except (OSError, SyntaxError, ValueError, ImportError, Image.DecompressionBombError) as err:
        raise DatasetError(f"{image} (VOC id {image_id}) is not an image spikeyolo can read ({err}): replace "
                           "or drop it") from None


def read_voc_part(part: VOCPart, names: list[str], audit: BoxAudit) -> list[ImageRecord]:
    """Read one part; boxes are checked against the real image size (the XML's may be wrong)."""
    records = []
    for image_id in part.ids:
        xml_path = part.annotations / f"{image_id}.xml"
        xml = _parse(xml_path)
        image = _image_path(part, image_id, xml)
        width, height = _image_size(image, image_id)
        record = ImageRecord(image, width, height, image_id=image_id)
        for obj in xml.iter("object"):
            name = (obj.findtext("name") or "").strip()
            bnd = obj.find("bndbox")
            coords = None if bnd is None else [bnd.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
            if name not in names:
                audit.skip("class not in the dataset's names" if name else "object without a name", xml_path.name)
                continue
            box = checked_box(coords, width, height, audit, xml_path.name)
            if box is not None:
                record.add((names.index(name), *box), (obj.findtext("difficult") or "0").strip() == "1", str(xml_path))
        records.append(record)
    return records


def read_voc(root: Path, split: str, names: list[str]) -> tuple[list[ImageRecord], BoxAudit]:
    """One ImageSets/Main split of a VOC root."""
    audit = BoxAudit()
    return read_voc_part(voc_split_part(root, split), names, audit), audit
