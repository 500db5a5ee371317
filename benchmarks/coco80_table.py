"""Print the COCO model's table (README, docs/results.md "COCO's 80 classes") from the files its stages wrote
(`bash benchmarks/coco80_model.sh`): no figure typed by hand.

Usage: python benchmarks/coco80_table.py [--runs runs/coco80/val] [--tuned binary-T4-e12-fw1 snm-T4-e12-fw1 …]
(the L = 4 student's rows where stage L4val ran: runs/coco80/val/L4-*)
One row per network and T, one column group per dataset (oi5 val: 72 photos, 5 of the 80 classes matched by name;
coco-tiny: 80 COCO val2017 photos, all 80 classes): mAP50 (ultralytics' metric, and in brackets the share of the
teacher's), mAP50-95, and for the SNN the firing rate, synaptic operations and compute energy per image.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DATASETS = ("oi5", "coco-tiny")


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(entry: dict | None, teacher: float | None) -> str:
    if entry is None:
        return "– | –"
    share = f" ({100 * entry['map50'] / teacher:.0f} %)" if teacher else ""
    return f"{entry['map50']:.3f}{share} | {entry['map50_95']:.3f}"


def _cost(entry: dict | None) -> str:
    if entry is None or "sops" not in entry:
        return "– | – | –"
    return f"{entry['firing_rate']:.2f} | {entry['sops'] / 1e9:.2f} G + {entry['other_ops'] / 1e6:.0f} M | " \
           f"{entry['energy_mj']:.2f}"


NEURONS = {"binary": "binary IF (0/1 spikes)", "snm": "signed neurons (±1 spikes)"}


def _tuned_label(name: str) -> str:
    """'snm-T4-e6-fw1' → 'signed neurons (±1 spikes), tuned for T = 4 (6 epochs, layer-by-layer loss × 1)';
    a weight of 0 goes unsaid; a run tuned from another student ('…-fw1-distill-L4') names it."""
    neurons, _, rest = name.partition("-T4-e")
    epochs, _, rest = rest.partition("-fw")
    feature, _, student = rest.partition("-")
    how = f"{epochs} epochs" + (f", layer-by-layer loss × {feature}" if feature and float(feature) else "")
    source = f"from the {student.removeprefix('distill-').replace('L', 'L = ')} student, " if student else ""
    return f"{NEURONS.get(neurons, neurons)}, {source}tuned for T = 4 ({how})"


def table(runs: Path, tuned: list[str]) -> list[str]:
    teacher = {d: _read(runs / f"teacher-{d}.json") for d in DATASETS}
    reference = {d: teacher[d]["map50"] if teacher[d] else None for d in DATASETS}
    head = "| network | T | " + " | ".join(f"{d} mAP50 (% of teacher) | {d} mAP50-95" for d in DATASETS) + \
        " | rate (oi5) | operations per image (oi5) | compute mJ (oi5) |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def row(label: str, t: str, entries: dict, cost: dict | None) -> None:
        cells = " | ".join(_cell(entries[d], reference[d]) for d in DATASETS)
        lines.append(f"| {label} | {t} | {cells} | {_cost(cost)} |")

    def model_rows(reports: dict, snn_label: str, ann_label: str | None = None) -> None:
        """One val report per dataset: its ANN row (where labelled) and its SNN at T = 1, 2, 4."""
        if ann_label:
            row(ann_label, "–", {d: (reports[d] or {}).get("ann") for d in DATASETS}, None)
        for t in ("1", "2", "4"):
            row(snn_label, t, {d: (reports[d] or {}).get("snn", {}).get(t) for d in DATASETS},
                (reports["oi5"] or {}).get("snn", {}).get(t))

    def reports_of(run: str) -> dict:
        return {d: _read(runs / f"{run}-{d}" / "report.json") for d in DATASETS}

    row("teacher: COCO YOLOv5n, SiLU, its own head", "–", teacher, None)
    model_rows(reports_of("bursts"), "SNN, bursts of up to 8 spikes", "QCFS ANN (L = 8), self-distilled")
    four = reports_of("L4")  # stage L4val, where it ran
    if any(four.values()):
        model_rows(four, "SNN of the L = 4 student, bursts of up to 4 spikes",
                   "QCFS ANN (L = 4): the shipped one re-quantized, 20 more epochs")
    for name in tuned:  # <neurons>-T4-e<epochs>-fw<feature weight>[-<run>], the tune stage's run names
        reports = reports_of(name)
        if any(reports.values()):
            model_rows(reports, f"SNN, {_tuned_label(name)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/coco80/val")
    parser.add_argument("--tuned", nargs="*",
                        default=["binary-T4-e12-fw1", "snm-T4-e12-fw1", "snm-T4-e12-fw1-distill-L4"],
                        help="the tune stage's run names (<NEURONS>-T4-e<EPOCHS>-fw<FEATURE>[-<RUN>])")
    args = parser.parse_args()
    print("\n".join(table(Path(args.runs), args.tuned)))


if __name__ == "__main__":
    main()
