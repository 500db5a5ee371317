"""The val report: JSON (read by other tools), CSV, a terminal table and PNG plots."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from spikeyolo.atomic import atomic_path, write_text


def build_report(accuracy: dict, cost: dict | None, dataset: str, weights: str, meta: dict) -> dict:
    """The report dict; SNN entries are keyed by T as a string."""
    ann = accuracy["ann"]
    snn = {}
    for t, acc in accuracy["snn"].items():
        snn[str(t)] = {**_accuracy_entry(acc), **(cost["per_timestep"][t] if cost else {})}
    report = {"ann": _accuracy_entry(ann) if ann else None, "snn": snn, "dataset": dataset, "weights": weights, **meta}
    if cost:
        report["cost"] = {k: v for k, v in cost.items() if k != "per_timestep"}
        report["cost"]["layers"] = report["cost"].pop("neuron_layers")
    return report


def _accuracy_entry(acc) -> dict:
    entry = {"map50": acc.map50, "map50_95": acc.map50_95, "per_class_map50": acc.per_class_map50}
    return {**entry, **(acc.dataset_metric or {})}


def write_json(report: dict, path: Path) -> None:
    write_text(path, json.dumps(report, indent=2))


def write_csv(report: dict, path: Path) -> None:
    rows = [["model", "T", "map50", "map50_95", "sops_per_image", "energy_mj_per_image", "firing_rate"]]
    if report["ann"]:
        cost = report.get("cost", {})
        rows.append(["ann", "", report["ann"]["map50"], report["ann"]["map50_95"], "", cost.get("ann_energy_mj", ""), ""])
    for t, r in report["snn"].items():
        rows.append(["snn", t, r["map50"], r["map50_95"], r.get("sops", ""), r.get("energy_mj", ""),
                     r.get("firing_rate", "")])
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    write_text(path, text.getvalue())


def table(report: dict) -> str:
    """The terminal table: ANN first, then the SNN at each T."""
    neurons = report.get("neurons", "?")  # convert.load.describe_neurons
    precision = report.get("precision", "fp32")
    convs = f", {precision} convolutions" if precision != "fp32" else ""
    lines = [f"SNN: {report.get('mode', '?')} conversion, {neurons}{convs}",
             f"{'model':>6} {'T':>5} {'mAP50':>8} {'mAP50-95':>9} {'SOPs/img':>11} {'energy mJ':>10} {'rate':>7}"
             f" {'dataset metric':>15}"]
    cost = report.get("cost", {})
    if report["ann"]:
        energy = f"{cost['ann_energy_mj']:.4f}" if cost else ""
        lines.append(f"{'ANN':>6} {'':>5} {report['ann']['map50']:8.4f} {report['ann']['map50_95']:9.4f} "
                     f"{'MACs ' + format(cost.get('ann_macs', 0) / 1e9, '.2f') + 'G' if cost else '':>11} {energy:>10} "
                     f"{'':>7} {_official(report['ann']):>15}")
    for t, r in report["snn"].items():
        extra = (f"{r['sops'] / 1e9:10.3f}G {r['energy_mj']:10.4f} {r['firing_rate']:7.4f}" if "sops" in r
                 else f"{'':>11} {'':>10} {'':>7}")
        lines.append(f"{'SNN':>6} {t:>5} {r['map50']:8.4f} {r['map50_95']:9.4f} {extra} {_official(r):>15}")
    if cost:
        lines.append(f"energy: {cost['energy_model']}; first layer {cost['first_layer_macs'] / 1e6:.1f}M MACs, "
                     f"once per image")
    return "\n".join(lines)


def _official(entry: dict) -> str:
    if "voc" in entry:
        return f"VOC07 {entry['voc']['map07']:.4f}"
    if "coco" in entry:
        return f"COCO {entry['coco']['map50_95']:.4f}"
    return ""


def write_plots(report: dict, folder: Path) -> list[Path]:
    """mAP against T (ANN as a line) and firing rate per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    steps = [int(t) for t in report["snn"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("map50", "mAP50"), ("map50_95", "mAP50-95")):
        line, = ax.plot(steps, [report["snn"][str(t)][key] for t in steps], marker="o", label=f"SNN {label}")
        if report["ann"]:
            ax.axhline(report["ann"][key], color=line.get_color(), linestyle="--", label=f"ANN {label}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("mAP")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(_save(fig, folder / "map_vs_timesteps.png"))
    layers = report.get("cost", {}).get("layers", [])
    if layers:
        fig, ax = plt.subplots(figsize=(max(6, len(layers) * 0.18), 4))
        ax.bar(range(len(layers)), [l["firing_rate"] for l in layers])
        ax.set_xticks(range(len(layers)), [l["name"].removeprefix("model.") for l in layers], rotation=90, fontsize=6)
        ax.set_ylabel(f"firing rate at T={max(steps)}")
        fig.tight_layout()
        written.append(_save(fig, folder / "firing_rate.png"))
    plt.close("all")
    return written


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return path
