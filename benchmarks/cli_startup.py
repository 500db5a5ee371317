"""How long the command line takes to answer before any work: `spikeyolo --help`, `spikeyolo --version` and a
command's own --help (which builds its parser only), each run as a new process; the median and the spread of
``--repeats`` runs, and for comparison the time to import torch alone in a new process.

Usage: python benchmarks/cli_startup.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

CASES = {"spikeyolo --help": ["--help"], "spikeyolo --version": ["--version"],
         "spikeyolo detect --help": ["detect", "--help"], "spikeyolo val --help": ["val", "--help"]}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    entry = shutil.which("spikeyolo")
    base = [entry] if entry else [sys.executable, "-m", "spikeyolo.cli"]
    cases = {**{label: base + extra for label, extra in CASES.items()},
             "python -c 'import torch' (for comparison)": [sys.executable, "-c", "import torch"]}
    print("| command | median s | min s | max s |\n| --- | --- | --- | --- |")
    for label, command in cases.items():
        timed(command)  # warm the file cache
        runs = [timed(command) for _ in range(args.repeats)]
        print(f"| `{label}` | {statistics.median(runs):.3f} | {min(runs):.3f} | {max(runs):.3f} |")


if __name__ == "__main__":
    main()
