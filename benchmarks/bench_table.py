"""Print the speed table of docs/results.md from a `spikeyolo benchmark` report (its benchmark.json; no
figure typed by hand).

Usage: python benchmarks/bench_table.py runs/bench/cpu-320.json
One row per (imgsz, batch, T): images/s of every engine, our per-step cost over one ANN forward, and
against SpikingJelly's neurons in our engine the end-to-end speed-up, the neurons' own speed-up and the bound
(SpikingJelly's time over ours with our neurons at zero cost), and against SpikingJelly's multi-step
execution (`spikingjelly_ms`) the end-to-end speed-up.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


OPTIONAL = {"snn_compiled": "detect's SNN compiled", "snn_binary": "binary SNN (per step ÷ ANN)",
            "snn_triton": "fused (Triton)", "snn_nchw": "NCHW", "snn_folded": "all T folded", "naive": "naive loop"}


def _cell(configs: dict, engine: str, key: tuple) -> str:
    found = configs.get((engine, *key))
    if not found:
        return "–"
    ratio = f" ({found['per_timestep_ratio']:.2f})" if engine in ("snn_binary", "snn_compiled") else ""
    return f"{found['images_per_s']:.2f}{ratio}"


def table(report: dict) -> list[str]:
    configs = {(c["engine"], c["imgsz"], c["batch"], c["timesteps"]): c for c in report["configs"]}
    versus = {(s["imgsz"], s["batch"], s["timesteps"]): s for s in report["speedups"] if s["vs"] == "spikingjelly"}
    multistep = {(s["imgsz"], s["batch"], s["timesteps"]): s["speedup"] for s in report["speedups"]
                 if s["vs"] == "spikingjelly_ms"}
    extra = [e for e in OPTIONAL if any(c["engine"] == e for c in report["configs"])]
    header = ["imgsz", "batch", "T", "ANN img/s", "detect's SNN img/s (per step ÷ ANN)", *(OPTIONAL[e] for e in extra),
              "SpikingJelly neurons", "binary vs SpikingJelly", "neurons alone", "bound", "SpikingJelly multi-step",
              "binary vs it"]
    lines = ["| " + " | ".join(header) + " |",
             "| --- " * len(header) + "|"]
    for (engine, imgsz, batch, steps), ours in configs.items():
        if engine != "snn":
            continue
        key = (imgsz, batch, steps)
        sj = versus.get(key, {})
        speedups = (f"{sj['speedup']:.2f}× | {sj['neuron_speedup']:.1f}× | {sj['bound']:.2f}×" if "bound" in sj
                    else "– | – | –")
        lines.append(f"| {imgsz} | {batch} | {steps} | {_cell(configs, 'ann', (imgsz, batch, None))} | "
                     f"{ours['images_per_s']:.2f} ({ours['per_timestep_ratio']:.2f}) | "
                     + "".join(f"{_cell(configs, e, key)} | " for e in extra)
                     + f"{_cell(configs, 'spikingjelly', key)} | {speedups} | "
                     + f"{_cell(configs, 'spikingjelly_ms', key)} | "
                     + (f"{multistep[key]:.2f}× |" if key in multistep else "– |"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a spikeyolo benchmark report (runs/benchmark/expN/benchmark.json)")
    print("\n".join(table(json.loads(parser.parse_args().report.read_text()))))


if __name__ == "__main__":
    main()
