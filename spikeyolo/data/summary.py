"""What `spikeyolo data PATH` prints: the layout found, each split with its images and boxes per class, and the
boxes that were skipped or clipped, and why (read from the prepared dataset's source.json)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from spikeyolo.data.prepare import prepare_dataset
from spikeyolo.data.records import BoxAudit


def dataset_summary(source: str | Path, train_split: str | None = None, val_split: str | None = None) -> dict:
    """The prepared dataset's own account of itself: kind, splits (images, boxes per class), audits, cache path."""
    data_yaml = prepare_dataset(source, train_split=train_split, val_split=val_split)
    meta = json.loads((data_yaml.parent / "source.json").read_text())
    return {"source": str(source), "kind": meta.get("kind", meta["format"]), "format": meta["format"],
            "splits": meta.get("summary", {}), "audits": meta.get("audits", {}),
            "notes": meta.get("notes", []), "prepared": str(data_yaml)}


def format_summary(summary: dict) -> str:
    lines = [f"{summary['source']}: {summary['kind']}"] + [f"  note: {note}" for note in summary["notes"]]
    for role, split in summary["splits"].items():
        boxes = split["boxes"]
        difficult = f", {split['difficult']} difficult (not trained on; VOC AP ignores them)" \
            if split.get("difficult") else ""
        lines.append(f"  {role:<5} ← {split['split']}: {split['images']} images, {sum(boxes.values())} boxes"
                     f"{difficult}")
        counts = ", ".join(f"{name} {count}".replace(" ", "\xa0") for name, count in boxes.items())  # one unit
        lines += [line.replace("\xa0", " ") for line in textwrap.wrap(counts, 110, initial_indent=" " * 8,
                                                                    subsequent_indent=" " * 8)]
    for where, saved in summary["audits"].items():
        audit = BoxAudit.from_dict(saved)
        if audit.skipped or audit.clipped:
            lines.append(f"  {where}: {audit.describe()}; e.g. in {sorted(audit.files)[0]}")
    lines.append(f"  prepared: {summary['prepared']}")
    return "\n".join(lines)
