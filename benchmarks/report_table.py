"""Print docs/results.md table rows from `spikeyolo val` report.json files (no figure is typed by hand).

Usage: python benchmarks/report_table.py LABEL=REPORT_JSON [LABEL=REPORT_JSON ...] [--ann-from REPORT_JSON]
Each report gives one row per T; the ANN row comes from the first report that has one (or --ann-from).
       python benchmarks/report_table.py --versus CHANNEL_JSON LAYER_JSON --ann-map50 0.769
prints the channel-wise vs layer-wise table (one row per T) instead.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _ops(count: float, unit: str) -> str:
    return f"{count / 1e9:.2f} G {unit}"


def _dataset_metric(entry: dict) -> str:
    """The dataset's own metric: VOC07 AP for VOC data, COCO mAP (pycocotools) for COCO data."""
    if "voc" in entry:
        return f"{entry['voc']['map07']:.3f}"
    return f"{entry['coco']['map50_95']:.3f}" if "coco" in entry else "–"


def rows(labelled: list[tuple[str, dict]], ann: dict | None) -> list[str]:
    """One row per baseline (from the first report with a cost) and per labelled report and T. Operations:
    synaptic accumulates (a burst of n is n) + other operations; energy under both models (report.json →
    cost.energy_models)."""
    lines = ["| model | T | mAP50 (% of ANN) | mAP50-95 | VOC07 | rate | operations | compute mJ | Lemaire mJ |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    cost = next((r["cost"] for _, r in labelled if r.get("cost")), {})
    for key, base in cost.get("baselines", {}).items():
        measured = ann if ann and key != "ann_int8" else None
        scores = (f"{measured['map50']:.3f} | {measured['map50_95']:.3f} | {_dataset_metric(measured)}"
                  if measured else "– (not measured) | – | –")
        lines.append(f"| {_label(key, labelled)} | – | {scores} | – | {_ops(base['macs'], 'MACs')} + "
                     f"{base['other_ops'] / 1e6:.0f} M | {base['energy_mj']:.2f} | {base['energy_lemaire_mj']:.1f} |")
    for label, report in labelled:
        for t, entry in sorted(report["snn"].items(), key=lambda item: int(item[0])):
            share = f" ({100 * entry['map50'] / ann['map50']:.0f} %)" if ann else ""
            lines.append(f"| {label} | {t} | {entry['map50']:.3f}{share} | {entry['map50_95']:.3f} | "
                         f"{_dataset_metric(entry)} | {entry.get('firing_rate', 0):.3f} | "
                         f"{_ops(entry.get('sops', 0), 'ACs')} + {entry.get('other_ops', 0) / 1e6:.0f} M | "
                         f"{entry.get('energy_mj', 0):.2f} | {entry.get('energy_lemaire_mj', 0):.1f} |")
    return lines


def _label(key: str, labelled: list[tuple[str, dict]]) -> str:
    """A baseline's row name; the QCFS levels L from the reports (``levels``)."""
    levels = next((r.get("levels") for _, r in labelled if r.get("levels")), None)
    if key == "ann_fp32":
        return f"ANN fp32 (QCFS, L = {levels})" if levels else "ANN fp32"
    if key.startswith("qcfs_") and key.endswith("bit"):
        return f"QCFS as a {key[5:-3]}-bit network"
    return {"ann_int8": "ANN int8"}.get(key, key)


def versus(channel: dict, layer: dict, ann_map50: float) -> list[str]:
    lines = ["| T | channel-wise mAP50 (% of ANN) | layer-wise mAP50 (% of ANN) | channel mAP50-95 | layer mAP50-95 |",
             "| --- | --- | --- | --- | --- |"]
    for t in sorted(set(channel["snn"]) & set(layer["snn"]), key=int):
        c, w = channel["snn"][t], layer["snn"][t]
        lines.append(f"| {t} | {c['map50']:.3f} ({100 * c['map50'] / ann_map50:.0f} %) | "
                     f"{w['map50']:.3f} ({100 * w['map50'] / ann_map50:.0f} %) | {c['map50_95']:.3f} | {w['map50_95']:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="*", help="LABEL=path/to/report.json")
    parser.add_argument("--ann-from", help="report.json whose ANN row to use")
    parser.add_argument("--versus", nargs=2, metavar=("CHANNEL", "LAYER"), help="channel vs layer report.json")
    parser.add_argument("--ann-map50", type=float, help="the ANN's mAP50 for --versus percentages")
    parser.add_argument("--timesteps", help="only these T (e.g. 1,2,4,8)")
    parser.add_argument("--no-baselines", action="store_true", help="only the SNN rows")
    args = parser.parse_args()
    if args.versus:
        channel, layer = (json.loads(Path(p).read_text()) for p in args.versus)
        print("\n".join(versus(channel, layer, args.ann_map50)))
        return
    labelled = []
    for item in args.reports:
        label, _, path = item.partition("=")
        report = json.loads(Path(path).read_text())
        if args.timesteps:
            report["snn"] = {t: e for t, e in report["snn"].items() if t in args.timesteps.split(",")}
        if args.no_baselines:
            report.pop("cost", None)
        labelled.append((label, report))
    source = [json.loads(Path(args.ann_from).read_text())] if args.ann_from else [r for _, r in labelled]
    ann = next((r["ann"] for r in source if r.get("ann")), None)
    print("\n".join(rows(labelled, ann)))


if __name__ == "__main__":
    main()
