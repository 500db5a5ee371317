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


def write_run(report: dict, folder: Path) -> None:
    """Everything one val run writes: report.json / .csv, the plots, and COCO results files (COCO datasets)."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, results in report.pop("coco_results", {}).items():
        write_json(results, folder / f"coco_results_{'ann' if key == 'ann' else 'T' + key}.json")
    write_json(report, folder / "report.json")
    write_csv(report, folder / "report.csv")
    write_plots(report, folder)


def tradeoff_table(reports: list[dict]) -> str:
    """Wu et al.'s threshold trade-off: accuracy against spikes, operations and energy, per θ scale and T."""
    lines = ["threshold trade-off (every θ scaled):",
             f"{'θ ×':>5} {'T':>4} {'mAP50':>7} {'mAP50-95':>8} {'rate':>6} {'SOPs':>9} {'compute mJ':>10} "
             f"{'Lemaire mJ':>10}"]
    for report in reports:
        for t, r in report["snn"].items():
            lines.append(f"{report['threshold_scale']:5g} {t:>4} {r['map50']:7.4f} {r['map50_95']:8.4f} "
                         f"{r.get('firing_rate', 0):6.3f} {_giga(r.get('sops', 0)):>9} {r.get('energy_mj', 0):10.4f} "
                         f"{r.get('energy_lemaire_mj', 0):10.3f}")
    return "\n".join(lines)


def write_json(report: dict, path: Path) -> Path:
    return write_text(path, json.dumps(report, indent=2))


BASELINE_LABELS = {"ann_fp32": "ANN fp32", "ann_int8": "ANN int8"}


def baseline_label(key: str) -> str:
    return BASELINE_LABELS.get(key, key.replace("qcfs_", "QCFS ").replace("bit", "-bit"))


def write_csv(report: dict, path: Path) -> None:
    rows = [["model", "T", "map50", "map50_95", "sops_per_image", "other_ops_per_image", "firing_rate",
             "energy_compute_mj", "energy_lemaire_mj"]]
    cost = report.get("cost", {})
    for key, base in cost.get("baselines", {}).items():
        accuracy = report["ann"] if report["ann"] and key != "ann_int8" else {}
        rows.append([key, "", accuracy.get("map50", ""), accuracy.get("map50_95", ""), base["macs"],
                     base["other_ops"], "", base["energy_mj"], base["energy_lemaire_mj"]])
    if report["ann"] and not cost:
        rows.append(["ann", "", report["ann"]["map50"], report["ann"]["map50_95"], "", "", "", "", ""])
    for t, r in report["snn"].items():
        rows.append(["snn", t, r["map50"], r["map50_95"], r.get("sops", ""), r.get("other_ops", ""),
                     r.get("firing_rate", ""), r.get("energy_mj", ""), r.get("energy_lemaire_mj", "")])
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    write_text(path, text.getvalue())


def table(report: dict) -> str:
    """The terminal table: the ANN baselines first (accuracy measured for the network val ran: its fp32 and
    L-level forms compute the same function; int8 accuracy is not measured), then the SNN at each T."""
    neurons = report.get("neurons", "?")  # convert.load.describe_neurons
    precision = report.get("precision", "fp32")
    convs = f", {precision} convolutions" if precision != "fp32" else ""
    tuned = f"; tuned for T = {report['tuned_for_timesteps']} ({report.get('tuning')})" \
        if report.get("tuned_for_timesteps") else ""
    split = report.get("dataset_split", report.get("split", "?"))
    named = f" ({split})" if split != report.get("split") else ""
    lines = [f"{report.get('images', '?')} images of {report.get('dataset', '?')}, {report.get('split')} split{named}",
             f"SNN: {report.get('mode', '?')} conversion, {neurons}{convs}{tuned}",
             f"{'model':>10} {'T':>4} {'mAP50':>7} {'mAP50-95':>8} {'ops/img':>16} {'rate':>6} {'compute mJ':>10}"
             f" {'Lemaire mJ':>10} {'dataset metric':>15}"]
    cost = report.get("cost", {})
    for key, base in cost.get("baselines", {}).items():
        accuracy = report["ann"] if report["ann"] and key != "ann_int8" else None
        scores = f"{accuracy['map50']:7.4f} {accuracy['map50_95']:8.4f}" if accuracy else f"{'–':>7} {'–':>8}"
        lines.append(f"{baseline_label(key):>10} {'':>4} {scores} {'MAC ' + _giga(base['macs']):>16} {'':>6} "
                     f"{base['energy_mj']:10.4f} {base['energy_lemaire_mj']:10.3f} "
                     f"{_official(accuracy) if accuracy else '':>15}")
    if report["ann"] and not cost:
        lines.append(f"{'ANN':>10} {'':>4} {report['ann']['map50']:7.4f} {report['ann']['map50_95']:8.4f}")
    for t, r in report["snn"].items():
        extra = (f"{'AC ' + _giga(r['sops']) + ' +' + _giga(r['other_ops']):>16} {r['firing_rate']:6.3f} "
                 f"{r['energy_mj']:10.4f} {r['energy_lemaire_mj']:10.3f}" if "sops" in r else f"{'':>16} {'':>6}")
        lines.append(f"{'SNN':>10} {t:>4} {r['map50']:7.4f} {r['map50_95']:8.4f} {extra} {_official(r):>15}")
    if cost:
        lines.append(f"ops: synaptic accumulates (a burst of n spikes is n) + other ops (neuron updates, pools, adds, "
                     f"head); the image's convolution ({cost['first_layer_macs'] / 1e6:.1f}M MACs) once per image")
        lines.append(f"energy: {cost['energy_models']['compute']}; Lemaire: {cost['energy_models']['lemaire']}")
        lines.append("int8 accuracy is not measured (no int8 model is run); rate is spikes per neuron per step")
    if report.get("latency"):
        lat = report["latency"]
        snn_key = next(k for k in lat if k.startswith("snn_ms"))
        ann = f"ANN {lat['ann_ms_per_image']:.1f} ms, " if lat.get("ann_ms_per_image") else ""
        depth = lat.get("spiking_layers_on_longest_path")
        pipeline = f"; {depth} spiking layers on the longest path (steps a pipelined chip needs)" if depth else ""
        lines.append(f"latency: detections after every step (first at step 1){pipeline}; wall time per image on "
                     f"{lat['device']}: {ann}SNN to T={snn_key.rsplit('T', 1)[1]} {lat[snn_key]:.1f} ms (cost "
                     "counting excluded)")
    return "\n".join(lines)


def _giga(count: float) -> str:
    return f"{count / 1e9:.2f}G" if count >= 1e8 else f"{count / 1e6:.1f}M"


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
        ax.set_ylabel(f"spikes per neuron per step at T={max(steps)}")
        fig.tight_layout()
        written.append(_save(fig, folder / "firing_rate.png"))
    if report.get("cost", {}).get("baselines"):
        written.append(_save(_accuracy_vs_energy(plt, report), folder / "map_vs_energy.png"))
        written.append(_save(_layer_energy(plt, report), folder / "energy_per_layer.png"))
    plt.close("all")
    return written


def _accuracy_vs_energy(plt, report: dict):
    """mAP50 against energy per image: the SNN at every T, the ANN baselines' energies, both energy models."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    steps = list(report["snn"])
    cost = report["cost"]
    for ax, key, title in ((axes[0], "energy_mj", "compute only (45 nm)"),
                           (axes[1], "energy_lemaire_mj", "Lemaire (memory)")):
        ax.plot([report["snn"][t][key] for t in steps], [report["snn"][t]["map50"] for t in steps], marker="o",
                label="SNN (T = " + ", ".join(steps) + ")")
        for t in steps:
            ax.annotate(t, (report["snn"][t][key], report["snn"][t]["map50"]), fontsize=7)
        for name, base in cost["baselines"].items():
            ax.axvline(base[key], linestyle="--", color="C1" if name == "ann_fp32" else "C2" if name == "ann_int8"
                       else "C3", label=f"{baseline_label(name)} energy")
        if report["ann"]:
            ax.axhline(report["ann"]["map50"], color="grey", linestyle=":", label="ANN mAP50")
        ax.set_xscale("log")
        ax.set_xlabel("energy per image (mJ)")
        ax.set_ylabel("mAP50")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _layer_energy(plt, report: dict):
    """Energy per layer at the largest T: SNN against the fp32 ANN, under both models."""
    rows = [r for r in report["cost"]["layer_costs"] if r["energy_mj"] or r["ann_energy_mj"]]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, len(rows) * 0.12), 6), sharex=True)
    x = list(range(len(rows)))
    for ax, snn_key, ann_key, title in ((axes[0], "energy_mj", "ann_energy_mj", "compute only"),
                                        (axes[1], "energy_lemaire_mj", "ann_energy_lemaire_mj", "Lemaire")):
        ax.bar([i - 0.2 for i in x], [r[snn_key] for r in rows], width=0.4,
               label=f"SNN T={max(map(int, report['snn']))}")
        ax.bar([i + 0.2 for i in x], [r[ann_key] for r in rows], width=0.4, label="ANN fp32")
        ax.set_ylabel("mJ per image")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    axes[1].set_xticks(x, [r["name"].removeprefix("model.") for r in rows], rotation=90, fontsize=5)
    fig.tight_layout()
    return fig


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return path
