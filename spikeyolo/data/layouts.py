"""What a ``--data`` path is, found from its layout: which annotation files and image folders make each split.

Layouts (first match wins): a COCO instances .json; a spikeyolo dataset yaml (``format: coco|voc``) or an
ultralytics dataset yaml; a COCO root (``annotations/instances_<split>.json``); a Roboflow COCO export
(``<split>/_annotations.coco.json``); a VOCdevkit (``VOC2007/``, ``VOC2012/``); a VOC folder with or without
``ImageSets/Main``; a labelImg folder (XML beside the images); VOC XMLs in a folder of their own beside an
image folder (``annotations/`` + ``images/``); ``train/`` and ``val/`` or ``test/`` folders of either. Every layout
has the roles ``train`` and ``val`` (and ``test`` where the dataset has a third split); ``train_split`` /
``val_split`` choose others in the layout's own split names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path


from spikeyolo.data.images import IMAGE_SUFFIXES
from spikeyolo.data.records import DatasetError, read_dataset_yaml
from spikeyolo.data.voc import HELD_OUT_ONE_IN, VOCPart, is_voc, listed_ids, unsplit_part, voc_split_part

ROBOFLOW_JSON = "_annotations.coco.json"
ROBOFLOW_VAL = ("valid", "val")
VOC_YEAR = re.compile(r"VOC(\d{4})")
XML_FOLDERS = ("annotations", "xml", "xmls", "labels")  # lower case: matched whatever the case
IMAGE_FOLDERS = ("images", "jpegimages", "imgs", "pictures", "photos")


@dataclass(frozen=True)
class COCOPart:
    """One COCO instances JSON and its image folder (None: found beside or above the file)."""
    annotations: Path
    images: Path | None
    name: str

    def as_dict(self) -> dict:
        return {"annotations": str(self.annotations.resolve()),
                "images": str(self.images.resolve()) if self.images else None, "name": self.name}

    @classmethod
    def from_dict(cls, saved: dict) -> "COCOPart":
        return cls(Path(saved["annotations"]), Path(saved["images"]) if saved["images"] else None, saved["name"])


@dataclass
class Layout:
    """A dataset as found: its format ('coco', 'voc' or 'yaml'), a description, and the parts of each role."""
    format: str
    kind: str
    source: Path
    splits: dict[str, list] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def split_names(self) -> dict[str, str]:
        return {role: "+".join(part.name for part in parts) for role, parts in self.splits.items()}


def _chosen(asked: str | None, default: str | None, have: list[str], what: str) -> str:
    name = asked or default
    if name not in have:
        raise DatasetError(f"{what} has no split {name!r}: its splits are {', '.join(have) or 'none'}")
    return name


def _coco_root(root: Path, train: str | None, val: str | None) -> Layout:
    files = {p.stem.removeprefix("instances_"): p for p in sorted((root / "annotations").glob("instances_*.json"))}
    have = list(files)
    default_val = next((s for s in have if s.startswith("val")), have[-1])
    default_train = next((s for s in have if s.startswith("train")), None)
    layout = Layout("coco", "COCO root (annotations/instances_<split>.json)", root)
    if train is None and default_train is None:
        layout.notes.append(f"{root} has no instances_train*.json: {default_val} serves as both train and val")
    roles = {"train": _chosen(train, default_train or default_val, have, str(root)),
             "val": _chosen(val, default_val, have, str(root))}
    layout.splits = {role: [COCOPart(files[name], None, name)] for role, name in roles.items()}
    return layout


def _roboflow(root: Path, train: str | None, val: str | None) -> Layout:
    have = [p.parent.name for p in sorted(root.glob(f"*/{ROBOFLOW_JSON}"))]
    default_val = next((s for s in ROBOFLOW_VAL if s in have), "test")
    roles = {"train": _chosen(train, "train", have, f"Roboflow export {root}"),
             "val": _chosen(val, default_val, have, f"Roboflow export {root}")}
    if "test" in have and roles["val"] != "test":
        roles["test"] = "test"
    splits = {role: [COCOPart(root / name / ROBOFLOW_JSON, root / name, name)] for role, name in roles.items()}
    return Layout("coco", f"Roboflow COCO export (<split>/{ROBOFLOW_JSON})", root, splits)


def _voc_parts(spec: str, roots: dict[str, Path]) -> list[VOCPart]:
    """'trainval' of a VOC root, or '2007/trainval+2012/trainval' of a VOCdevkit (years as 2007 or VOC2007)."""
    parts = []
    for item in spec.split("+"):
        year, _, split = item.strip().rpartition("/")
        year = year.removeprefix("VOC")
        if year not in roots:
            raise DatasetError(f"split {item!r}: a VOC folder's splits are its ImageSets/Main names (e.g. trainval)"
                               if "" in roots else f"split {item!r}: name a VOCdevkit's splits <year>/<split>, "
                               f"the year one of {', '.join(roots)}")
        parts.append(voc_split_part(roots[year], split, f"VOC{year}/{split}" if year else split))
    return parts


def _vocdevkit(root: Path, train: str | None, val: str | None) -> Layout:
    years = {m.group(1): d for d in sorted(root.iterdir()) if (m := VOC_YEAR.fullmatch(d.name)) and is_voc(d)}
    has = {y: {p.stem for p in (d / "ImageSets" / "Main").glob("*.txt")} for y, d in years.items()}
    default_train = "+".join(f"{y}/trainval" for y in years if "trainval" in has[y])
    test_year = next((y for y in years if "test" in has[y]), None)  # VOC2007 test: the standard benchmark
    default_val = f"{test_year}/test" if test_year else f"{list(years)[-1]}/val"
    splits = {"train": _voc_parts(train or default_train, years), "val": _voc_parts(val or default_val, years)}
    return Layout("voc", f"VOCdevkit ({', '.join(f'VOC{y}' for y in years)})", root, splits)


def _voc(root: Path, train: str | None, val: str | None) -> Layout:
    have_test = (root / "ImageSets" / "Main" / "test.txt").is_file()
    splits = {"train": _voc_parts(train or "trainval", {"": root}),
              "val": _voc_parts(val or ("test" if have_test else "val"), {"": root})}
    return Layout("voc", "VOC folder (Annotations/, JPEGImages/, ImageSets/Main/)", root, splits)


def _unsplit(root: Path, annotations: Path, images: Path, kind: str, train: str | None, val: str | None) -> Layout:
    layout = Layout("voc", kind, root, {"train": [unsplit_part(annotations, images, train or "train")],
                                        "val": [unsplit_part(annotations, images, val or "val")]})
    if not (train and val):
        how = "ImageSets/Main/<split>.txt or " if annotations != images else ""
        layout.notes.append(f"{root} has no ImageSets/Main: split by image id (1 in {HELD_OUT_ONE_IN} to val, by sha1 "
                            f"of the id, stable as images are added); choose with {how}--train-split / --val-split "
                            "(train, val or all)")
    return layout


def _is_labelimg(root: Path) -> bool:
    xmls = [p for p in root.glob("*.xml") if p.is_file()]
    return bool(xmls) and any((root / f"{p.stem}{s}").is_file() for p in xmls[:20] for s in IMAGE_SUFFIXES)


def _xml_folders(root: Path) -> tuple[Path, Path] | None:
    """(XML folder, image folder) of a folder holding VOC XMLs and images side by side (labelImg) or in
    folders of their own (``annotations/`` + ``images/``, any case); None if it is neither."""
    if _is_labelimg(root):
        return root, root
    folders = {p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir()} if root.is_dir() else {}
    xml = next((folders[n] for n in XML_FOLDERS if n in folders and any(folders[n].glob("*.xml"))), None)
    images = next((folders[n] for n in IMAGE_FOLDERS if n in folders), None)
    return (xml, images) if xml and images else None


def _split_folders(root: Path, train: str | None, val: str | None) -> Layout | None:
    """``train/``, ``val/`` or ``valid/``, ``test/`` folders, each a labelImg folder or annotations/ + images/:
    train → train, val (else test) → val, test → test when val is there too."""
    have = {p.name: found for p in sorted(root.iterdir()) if p.is_dir() and (found := _xml_folders(p))}
    default_val = next((name for name in (*ROBOFLOW_VAL, "validation", "test") if name in have), None)
    if "train" not in have or default_val is None:
        return None
    roles = {"train": _chosen(train, "train", list(have), f"{root} (split folders)"),
             "val": _chosen(val, default_val, list(have), f"{root} (split folders)")}
    if "test" in have and roles["val"] != "test":
        roles["test"] = "test"
    splits = {role: [replace(unsplit_part(*have[name], "all"), name=name)] for role, name in roles.items()}
    return Layout("voc", "split folders of VOC XML (train/, val/ or test/: XML beside the images or annotations/ + "
                  "images/)", root, splits)


def _spikeyolo_yaml(path: Path, config: dict, train: str | None, val: str | None) -> Layout:
    """``format: coco|voc``, optional ``path``, and train/val/test as {annotations, images[, ids]} mappings."""
    fmt = config.get("format")
    if fmt not in ("coco", "voc"):
        raise DatasetError(f"dataset yaml {path}: format must be coco or voc, got {fmt!r}")
    root = Path(str(config.get("path") or "."))
    root = root if root.is_absolute() else path.parent / root
    if train or val:
        raise DatasetError(f"dataset yaml {path}: its splits are written in the file; edit train/val there")
    layout = Layout(fmt, f"spikeyolo dataset yaml (format: {fmt})", path)
    for role in ("train", "val", "test"):
        entry = config.get(role)
        if entry is None and role == "test":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("annotations"), str) \
                or not isinstance(entry.get("images"), str):
            raise DatasetError(f"dataset yaml {path}: {role} must be a mapping with annotations: and images: "
                               f"(paths relative to {root})")
        annotations, images = (root / entry["annotations"], root / entry["images"])
        for what in (annotations, images):
            if not what.exists():
                raise DatasetError(f"dataset yaml {path}: {role} {what} not found")
        layout.splits[role] = [_yaml_part(fmt, role, annotations, images, entry.get("ids"), root, path)]
    return layout


def _yaml_part(fmt: str, role: str, annotations: Path, images: Path, ids, root: Path, path: Path):
    if fmt == "coco":
        return COCOPart(annotations, images, role)
    if ids is None:
        return unsplit_part(annotations, images, "all")
    return VOCPart(annotations, images, tuple(listed_ids(root / str(ids), annotations)), role)


def _found(root: Path) -> str:
    entries = sorted(root.iterdir())
    folders = [p.name for p in entries if p.is_dir()][:6]
    files = [p for p in entries if p.is_file()]
    images = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in files)
    return (f"found {len(folders)} folder(s){' (' + ', '.join(folders) + ')' if folders else ''}, "
            f"{sum(p.suffix == '.xml' for p in files)} XML, {sum(p.suffix == '.json' for p in files)} JSON "
            f"and {images} image file(s)")


def folder_layout(root: Path, train: str | None = None, val: str | None = None) -> Layout:
    if (root / "annotations").is_dir() and any((root / "annotations").glob("instances_*.json")):
        return _coco_root(root, train, val)
    if any(root.glob(f"*/{ROBOFLOW_JSON}")):
        return _roboflow(root, train, val)
    if (root / "VOCdevkit").is_dir():
        return folder_layout(root / "VOCdevkit", train, val)
    if any(VOC_YEAR.fullmatch(d.name) and is_voc(d) for d in root.iterdir()):
        return _vocdevkit(root, train, val)
    if is_voc(root):
        return _voc(root, train, val)
    if (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir():
        return _unsplit(root, root / "Annotations", root / "JPEGImages", "VOC folder without ImageSets", train, val)
    if _is_labelimg(root):
        return _unsplit(root, root, root, "labelImg folder (XML beside the images)", train, val)
    if found := _xml_folders(root):
        return _unsplit(root, *found, "VOC XML folder and image folder (annotations/ + images/)", train, val)
    if layout := _split_folders(root, train, val):
        return layout
    raise DatasetError(f"{root} is not a dataset layout spikeyolo reads (a COCO root with "
                       f"annotations/instances_*.json, "
                       f"a Roboflow export with <split>/{ROBOFLOW_JSON}, a VOCdevkit, a VOC folder with Annotations/ "
                       f"and JPEGImages/, a labelImg folder of XML beside images, annotations/ of XML + images/, "
                       f"or train/ and val/ or test/ folders of these): {_found(root)}")


def find_layout(source: Path, train: str | None = None, val: str | None = None) -> Layout:
    """The layout of ``source``; a DatasetError that names what was expected and what was found."""
    if not source.exists():
        raise DatasetError(f"dataset {source} not found: pass a dataset folder, a COCO instances JSON or a dataset "
                           "yaml")
    if source.is_dir():
        return folder_layout(source, train, val)
    if source.suffix == ".json":
        if train or val:
            raise DatasetError(f"{source} is a single COCO JSON: it has no splits to choose")
        part = COCOPart(source, None, source.stem)
        return Layout("coco", "COCO instances JSON (one split)", source, {"train": [part], "val": [part]},
                      [f"{source} is a single split: it serves as both train and val"])
    if source.suffix in (".yaml", ".yml"):
        config = read_dataset_yaml(source)
        if isinstance(config, dict) and "format" in config:
            return _spikeyolo_yaml(source, config, train, val)
        return Layout("yaml", "ultralytics dataset yaml", source)
    raise DatasetError(f"{source} is not a dataset spikeyolo reads: pass a dataset folder (COCO, Roboflow, VOC, "
                       "labelImg), a COCO instances .json or a dataset .yaml")
