"""Images/s, per-timestep cost against one ANN forward, and peak memory, for every engine and configuration.

Engines: ``ann`` (the same network as an ANN, batch-norm folded); ``snn``, the network ``spikeyolo detect``
runs (loaded as detect loads it: bursts of up to L spikes for QCFS weights, the device's default neuron backend),
and ``snn_compiled``, the same through ``torch.compile`` (compiled before the timing). The SpikingJelly
comparison is made with binary IF neurons, which SpikingJelly has: ``snn_binary`` (our engine, binary spikes),
``snn_triton`` (the same with the fused kernel, CUDA), ``snn_folded`` (all T folded into one batch per layer
call, the default on a GPU), ``snn_nchw`` (NCHW tensors instead of channels-last), ``naive`` (stepped one
timestep at a time through the whole network), ``spikingjelly`` (our graph with SpikingJelly's multi-step IF
neurons) and ``spikingjelly_ms`` (the same, run as a SpikingJelly multi-step network: image repeated over T, all
T folded into each layer call, NCHW).

For the spiking engines the neuron layers are also timed on their own (``neuron_seconds``): the
convolutions are the same in ours and in SpikingJelly's, so the neuron time says where the two differ
and bounds the end-to-end speed-up (``bound``: SpikingJelly's time over ours without our neurons).
Everything runs channels-last (the ANN too), the faster layout for oneDNN and cuDNN.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import torch

from spikeyolo.bench.spikingjelly_neurons import SpikingJellyIF
from spikeyolo.quantize.checkpoint import load_detector
from spikeyolo.convert import convert
from spikeyolo.convert.load import load_model
from spikeyolo.engine import default_backend
from spikeyolo.device import torch_device
from spikeyolo.engine.layers import IFNeuron
from spikeyolo.engine.runner import SpikingDetector, reduced_precision
from spikeyolo.ultra import fold_batchnorm


NEURON_TYPES = (IFNeuron, SpikingJellyIF)
ENGINES = ("ann", "snn", "snn_compiled", "snn_binary", "snn_folded", "snn_nchw", "snn_triton", "naive",
           "spikingjelly", "spikingjelly_ms")
TIMED_NEURONS = ("snn_binary", "snn_triton", "spikingjelly", "spikingjelly_ms")  # neuron layers also timed alone
BINARY_BASELINES = ("spikingjelly", "spikingjelly_ms", "naive", "snn_folded", "snn_nchw")  # against snn_binary


@dataclass
class BenchResult:
    engine: str
    imgsz: int
    batch: int
    timesteps: int | None
    seconds: float            # median time of one batch
    images_per_s: float
    per_timestep_ratio: float | None  # (seconds / T) / ANN seconds, same imgsz and batch
    peak_memory_mb: float     # CUDA: peak allocated; CPU: peak resident-set growth during the runs
    neuron_seconds: float | None = None  # median time of the neuron layers alone within one batch
    spread: float = 0.0       # (slowest − fastest) / median of the timed rounds


class PeakMemory:
    """Peak memory of the code inside ``with``: CUDA's allocator peak, or sampled RSS growth on the CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.process, self.stop = psutil.Process(os.getpid()), threading.Event()
            self.base = self.process.memory_info().rss
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while not self.stop.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss - self.base)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.stop.set()
            self.thread.join()
            self.peak = max(self.peak, self.process.memory_info().rss - self.base)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_side_by_side(runs: dict, device: torch.device, repeats: int, warmup: int = 1, on_round=None) -> dict:
    """{key: (median seconds, peak memory MB, spread)} of every ``run()``, timed in turn, round after round;
    spread is (slowest − fastest) / median. ``on_round(done, repeats)`` after each round.

    Interleaving the runs makes slow drifts of the machine (other tenants, clocks) hit every engine
    alike, so that the ratios between them hold even when the absolute figures wander.
    """
    times, peaks = {key: [] for key in runs}, dict.fromkeys(runs, 0.0)
    with torch.inference_mode():
        for run in runs.values():
            for _ in range(warmup):
                run()
        for done in range(1, repeats + 1):
            for key, run in runs.items():
                with PeakMemory(device) as memory:
                    _sync(device)
                    start = time.perf_counter()
                    run()
                    _sync(device)
                    times[key].append(time.perf_counter() - start)
                peaks[key] = max(peaks[key], memory.peak)
            if on_round is not None:
                on_round(done, repeats)
    medians = {key: sorted(times[key])[repeats // 2] for key in runs}
    return {key: (medians[key], peaks[key] / 2**20, (max(times[key]) - min(times[key])) / medians[key])
            for key in runs}


class NeuronClock:
    """Sums the wall time spent inside the neuron layers of a spiking engine (CUDA synchronized)."""

    def __init__(self, engine: SpikingDetector, device: torch.device):
        self.device, self.seconds, self.start = device, 0.0, 0.0
        neurons = [m for m in engine.stateful() if isinstance(m, NEURON_TYPES)]
        self.hooks = [h for m in neurons for h in (m.register_forward_pre_hook(self._enter),
                                                     m.register_forward_hook(self._leave))]

    def _enter(self, *_):
        _sync(self.device)
        self.start = time.perf_counter()

    def _leave(self, *_):
        _sync(self.device)
        self.seconds += time.perf_counter() - self.start

    def remove(self):
        for h in self.hooks:
            h.remove()


def time_neurons(run, engine: SpikingDetector, device: torch.device, repeats: int) -> float:
    """Median seconds spent in the neuron layers during one ``run()`` (a separate, instrumented pass)."""
    clock, totals = NeuronClock(engine, device), []
    try:
        with torch.inference_mode():
            for _ in range(repeats):
                clock.seconds = 0.0
                run()
                totals.append(clock.seconds)
    finally:
        clock.remove()
    return sorted(totals)[len(totals) // 2]


def build_engines(weights: str | Path, device: torch.device, with_spikingjelly: bool = True,
                  precision: str = "fp32", compiled: bool = False) -> dict:
    """The ANN (BN folded), detect's SNN (eager and, with ``compiled``, compiled) and the binary SNN engines of one
    checkpoint (a QCFS-trained one)."""
    model, meta = load_detector(weights, device)
    if not meta["quantization"].get("levels"):
        raise ValueError(f"{weights} is not QCFS-trained: benchmark a QCFS checkpoint (the SNN needs its thresholds)")
    ann = fold_batchnorm(copy.deepcopy(model)).eval().to(memory_format=torch.channels_last)
    detected = load_model(weights, device, ann=False, backend=default_backend(device)).snn  # as detect loads it
    detected.set_precision(precision)
    snn = convert(model, "qcfs").to(device)
    snn.set_precision(precision)  # the copies below inherit it
    nchw = copy.deepcopy(snn)
    nchw.use_channels_last(False)
    engines = {"ann": ann, "snn": detected, "snn_binary": snn, "snn_nchw": nchw}
    if compiled:
        engines["snn_compiled"] = copy.deepcopy(detected).compile()
    if device.type == "cuda":
        triton = copy.deepcopy(snn)
        triton.set_backend("triton")
        engines["snn_triton"] = triton
    if with_spikingjelly:
        from spikeyolo.bench.spikingjelly_neurons import with_spikingjelly_execution, with_spikingjelly_neurons

        engines["spikingjelly"] = with_spikingjelly_neurons(snn)
        engines["spikingjelly_ms"] = with_spikingjelly_execution(snn)
    return engines


def _runner(name: str, engine, images: torch.Tensor, timesteps: int, precision: str = "fp32"):
    if name == "ann":
        def run_ann():
            with reduced_precision(images.device, precision):
                return engine(images)
        return run_ann
    if name == "naive":
        return lambda: engine(images, timesteps, chunk=1)
    if name == "snn_folded":
        return lambda: engine(images, timesteps, chunk=timesteps)
    if name == "spikingjelly_ms":
        nchw = images.contiguous()  # its layout, converted once outside the timing
        return lambda: engine(nchw, timesteps, chunk=timesteps)
    return lambda: engine(images, timesteps)


def run_benchmark(weights: str | Path, imgszs=(320,), timesteps=(1, 4), batches=(1,), device: str = "auto",
                  repeats: int = 5, engines: tuple[str, ...] | None = None, progress=print,
                  precision: str = "fp32", compiled: bool = False) -> list[BenchResult]:
    """Every engine at every (imgsz, batch, T), measured in this one process, side by side."""
    device = torch_device(device)
    wants_sj = engines is None or bool({"spikingjelly", "spikingjelly_ms"} & set(engines))
    if wants_sj and importlib.util.find_spec("spikingjelly") is None:
        if engines is not None:
            raise ImportError("the spikingjelly engine needs SpikingJelly: pip install 'spikeyolo[bench]'")
        progress("SpikingJelly not installed (pip install 'spikeyolo[bench]'): its engine is left out")
        wants_sj = False
    compiled = compiled or bool(engines and "snn_compiled" in engines)
    built = build_engines(weights, device, wants_sj, precision, compiled)
    built["naive"] = built["snn_folded"] = built["snn_binary"]
    spiking = [e for e in ENGINES[1:] if e in built and (engines is None or e in engines)]
    for line in engine_legend({name: built[name] for name in ("ann", *spiking)}, device):
        progress(line)
    results = []
    for imgsz in imgszs:
        for batch in batches:
            images = torch.rand(batch, 3, imgsz, imgsz, device=device).contiguous(memory_format=torch.channels_last)
            runs = {("ann", None): _runner("ann", built["ann"], images, 1, precision)}  # always: the ratios' reference
            runs.update({(name, steps): _runner(name, built[name], images, steps)
                         for steps in timesteps for name in spiking})
            progress(f"imgsz {imgsz} batch {batch}: timing {len(runs)} runs side by side, {repeats} rounds")
            started = time.perf_counter()
            timed = time_side_by_side(runs, device, repeats, warmup=2 if compiled else 1,  # compiled: eager, compile
                                      on_round=lambda done, total: progress(
                                          f"  round {done}/{total} ({time.perf_counter() - started:.0f} s)"))
            ann_seconds = timed[("ann", None)][0]
            for (name, steps), (seconds, memory, spread) in timed.items():
                neurons = None
                if name in TIMED_NEURONS:
                    neurons = time_neurons(runs[(name, steps)], built[name], device, repeats)
                ratio = None if steps is None else seconds / steps / ann_seconds
                results.append(BenchResult(name, imgsz, batch, steps, seconds, batch / seconds, ratio, memory,
                                           neurons, spread))
                progress(_line(results[-1]))
    for warning in timing_warnings(results):
        progress(f"warning: {warning}")
    return results


NOISY = 0.15  # a spread of the rounds above this makes a configuration's figure doubtful


def timing_warnings(results: list[BenchResult]) -> list[str]:
    """What makes these figures doubtful: rounds that spread widely, and an engine that ran more steps in less
    time (impossible but for noise: the machine was busy, or the clock moved)."""
    warnings = []
    noisy = [r for r in results if r.spread > NOISY]
    if noisy:
        worst = max(noisy, key=lambda r: r.spread)
        warnings.append(f"{len(noisy)} of {len(results)} timings spread by more than {NOISY:.0%} between rounds (up "
                        f"to {worst.spread:.0%}, {worst.engine} T={worst.timesteps}): the machine was busy; "
                        "rerun with more --repeats, or with nothing else running")
    by_engine = {}
    for r in results:
        if r.timesteps is not None:
            by_engine.setdefault((r.engine, r.imgsz, r.batch), []).append(r)
    for (engine, imgsz, batch), rows in by_engine.items():
        rows.sort(key=lambda r: r.timesteps)
        for fewer, more in zip(rows, rows[1:]):
            if more.seconds < fewer.seconds:
                warnings.append(f"{engine} (imgsz {imgsz}, batch {batch}) ran T={more.timesteps} faster than "
                                f"T={fewer.timesteps}: noise, not a result; rerun with more --repeats")
    return warnings


def _line(r: BenchResult) -> str:
    ratio = f"{r.per_timestep_ratio:6.2f}" if r.per_timestep_ratio is not None else "     -"
    steps = f"{r.timesteps:4d}" if r.timesteps else "   -"
    neurons = f"  neurons {r.neuron_seconds / r.seconds:4.0%}" if r.neuron_seconds is not None else ""
    memory = f"{r.peak_memory_mb:8.1f}" if r.peak_memory_mb >= 1 else "      <1"
    return (f"{r.engine:>15} imgsz {r.imgsz:4d} batch {r.batch:3d} T {steps}  {r.images_per_s:9.2f} img/s "
            f"±{r.spread / 2:4.0%}  per-step/ANN {ratio}  peak {memory} MB{neurons}")


def engine_legend(engines: dict, device: torch.device) -> list[str]:
    """What each engine runs, in words (its neurons), and what "peak" measures on this device."""
    from spikeyolo.convert.load import describe_neurons

    neurons = {name: describe_neurons(engines[name]) for name in ("snn", "snn_binary") if name in engines}
    said = {"ann": "the ANN, batch-norm folded",
            "snn": f"detect's network: {neurons.get('snn')}",
            "snn_compiled": "detect's network through torch.compile",
            "snn_binary": f"{neurons.get('snn_binary')} (the binary reference below)",
            "snn_folded": "snn_binary, all T in one batch", "snn_nchw": "snn_binary in NCHW layout",
            "snn_triton": "snn_binary with the fused Triton neurons",
            "naive": "snn_binary stepped one timestep at a time through the whole network",
            "spikingjelly": "snn_binary with SpikingJelly's IFNode in place of our neurons",
            "spikingjelly_ms": "SpikingJelly's multi-step execution (image repeated over T, NCHW, its IFNode)"}
    memory = ("peak: the CUDA allocator's peak during a run" if device.type == "cuda" else
              "peak: growth of the process's resident memory during a run (memory freed by earlier runs is reused, "
              "so <1 MB means it fit in what the process already held)")
    return [f"{name}: {said[name]}" for name in ENGINES if name in engines] + [
        memory, "±: half the spread between the fastest and slowest round"]


def summary(results: list[BenchResult]) -> dict:
    """JSON-ready: every configuration; the binary engine's speed-up over SpikingJelly and the other binary
    baselines, and the compiled network's over the eager one (``vs`` names the slower engine, ``ours`` the faster).

    Against SpikingJelly's neurons in our engine also the neurons' own speed-up and the end-to-end bound (our
    neurons at zero cost); against SpikingJelly's multi-step execution the neurons' speed-up.
    """
    by_engine = {(r.engine, r.imgsz, r.batch, r.timesteps): r for r in results}
    speedups = []
    for r in results:
        key = (r.imgsz, r.batch, r.timesteps)
        reference = "snn_binary" if r.engine in BINARY_BASELINES else "snn_compiled" if r.engine == "snn" else None
        if reference and (reference, *key) in by_engine:
            mine = by_engine[(reference, *key)]
            row = {"vs": r.engine, "ours": reference, "imgsz": r.imgsz, "batch": r.batch, "timesteps": r.timesteps,
                   "speedup": r.seconds / mine.seconds}
            if r.neuron_seconds is not None and mine.neuron_seconds is not None:
                row["neuron_speedup"] = r.neuron_seconds / max(mine.neuron_seconds, 1e-9)
            if r.engine == "spikingjelly" and "neuron_speedup" in row:  # the same layers: only neurons differ
                row["bound"] = r.seconds / max(mine.seconds - mine.neuron_seconds, 1e-9)
            speedups.append(row)
    return {"configs": [asdict(r) for r in results], "speedups": speedups, "warnings": timing_warnings(results)}
