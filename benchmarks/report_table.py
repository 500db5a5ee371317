"""Print README table rows from `spikeyolo val` report.json files (no figure is typed by hand).

Usage: python benchmarks/report_table.py LABEL=REPORT_JSON [LABEL=REPORT_JSON ...] [--ann-from REPORT_JSON]
Each report gives one row per T; the ANN row comes from the first report that has one (or --ann-from).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _ops(count: float, unit: str) -> str:
    return f"{count / 1e9:.2f} G {unit}"


def rows(labelled: list[tuple[str, dict]], ann: dict | None) -> list[str]:
    lines = ["| model | T | mAP50 (% of ANN) | mAP50-95 | VOC07 | operations | energy mJ | rate |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    if ann:
        cost = next((r["cost"] for _, r in labelled if r.get("cost")), {})
        lines.append(f"| ANN | – | {ann['map50']:.3f} | {ann['map50_95']:.3f} | {ann['voc']['map07']:.3f} | "
                     f"{_ops(cost.get('ann_macs', 0), 'MACs')} | {cost.get('ann_energy_mj', 0):.2f} | – |")
    for label, report in labelled:
        for t, entry in sorted(report["snn"].items(), key=lambda item: int(item[0])):
            share = f" ({100 * entry['map50'] / ann['map50']:.0f} %)" if ann else ""
            lines.append(f"| {label} | {t} | {entry['map50']:.3f}{share} | {entry['map50_95']:.3f} | "
                         f"{entry['voc']['map07']:.3f} | {_ops(entry.get('sops', 0), 'SOPs')} | "
                         f"{entry.get('energy_mj', 0):.2f} | {entry.get('firing_rate', 0):.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="LABEL=path/to/report.json")
    parser.add_argument("--ann-from", help="report.json whose ANN row to use")
    args = parser.parse_args()
    labelled = []
    for item in args.reports:
        label, _, path = item.partition("=")
        labelled.append((label, json.loads(Path(path).read_text())))
    source = [json.loads(Path(args.ann_from).read_text())] if args.ann_from else [r for _, r in labelled]
    ann = next((r["ann"] for r in source if r.get("ann")), None)
    print("\n".join(rows(labelled, ann)))


if __name__ == "__main__":
    main()
