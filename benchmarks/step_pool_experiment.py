"""Experiment (not a product option): SPPF's max-pools left as plain max-pools of each step's spikes.

The converter replaces every max-pool with the exact ``CumulativeMaxPool`` (its output's running sum is the
max-pool of the input's running sum). The issue's hint: a naive pool of each step's spikes (for binary spikes, an
OR over the window) scored higher after conversion. This script runs any spikeyolo command with the converter's
pool replacement switched off, so `val` and `tune` see the naive pool. Binary and burst IF only (a signed
network's negative spikes would be pooled wrongly); the cost report leaves out the pools' comparisons.

Usage: python benchmarks/step_pool_experiment.py val|tune ARGS...   (docs/results.md "±1 spikes at T ≤ 4")
"""
import importlib
import sys

import torch

convert = importlib.import_module("spikeyolo.convert.convert")  # the module, not the function the package exports
artifact = importlib.import_module("spikeyolo.convert.artifact")
convert.max_pool_uses = lambda model: {}  # no max-pool is wrapped: each step's spikes are pooled as they are
_build = artifact.build_from_graph


def _build_leaving_pools(net, graph, backend, path):
    """The artifact loader, without its check that every max-pool was wrapped (here none is, on purpose)."""
    saved = torch.nn.MaxPool2d
    torch.nn.MaxPool2d = type("NoPool", (), {})
    try:
        _build(net, graph, backend, path)
    finally:
        torch.nn.MaxPool2d = saved


artifact.build_from_graph = _build_leaving_pools

if __name__ == "__main__":
    if "--snm" in sys.argv:
        sys.exit("step_pool_experiment: binary or burst IF only (signed spikes are not pooled by a plain max-pool)")
    from spikeyolo.cli import main

    sys.exit(main(sys.argv[1:]))
