"""Speed: the ANN, our spiking engine, a naive per-step loop and SpikingJelly's neurons, side by side."""
from spikeyolo.bench.speed import BenchResult, run_benchmark

__all__ = ["BenchResult", "run_benchmark"]
