"""Energy of the counted work, under two named models, for the SNN and three ANN baselines.

1. ``compute``: arithmetic only, 45 nm (Horowitz, ISSCC 2014): per add (AC) and multiply-accumulate (MAC), in
   the fp32 (0.9 / 4.6 pJ), fp16 (0.4 / 1.5 pJ) or int8 (0.03 / 0.23 pJ) preset. Memory is free here: the
   model most SNN papers use, and the one that favours SNNs most.
2. ``lemaire``: after Lemaire et al. (ICONIP 2022), as SpikingJelly 2.0 implements it
   (``estimate_lemaire_energy``): 32-bit integer ops (add 0.1 pJ, mul 3.1 pJ), addressing, and SRAM
   traffic of inputs/outputs, weights and membranes, each access priced by the size of its memory (10, 20,
   100 pJ per 32-bit word at 8 kB, 32 kB, 1 MB, interpolated). Binary IF layers are counted exactly as
   SpikingJelly counts them (a test checks it); the extensions are ours: a burst of n is n spikes, signed
   spikes count both signs, SNM's memory is a second membrane, and max-pool, the head's running mean and
   residual adds cost their operations and state traffic.

Per image, at T steps. What neither model counts: DRAM (everything is assumed to fit on chip), the box
decoding (DFL), image loading, control logic and leakage.
"""
from __future__ import annotations

from dataclasses import dataclass

from spikeyolo.eval.counting import Site

COMPUTE_PRESETS = {"fp32": (0.9, 4.6), "fp16": (0.4, 1.5), "int8": (0.03, 0.23)}  # (AC, MAC) pJ, 45 nm
LEMAIRE_ADD_PJ, LEMAIRE_MUL_PJ = 0.1, 3.1
LEMAIRE_SRAM = ((0.0, 0.0), (8 * 1024, 2.5), (32 * 1024, 5.0), (1024 * 1024, 25.0))  # (bytes, pJ per byte)
FIFO_WORDS = 1000  # SNN input/output FIFO of each layer (Lemaire's setting)
WORD = 4


def sram_pj_per_byte(capacity_bytes: float) -> float:
    """Access energy per byte of an SRAM of this size (piecewise linear, clamped at 1 MB)."""
    points = LEMAIRE_SRAM
    capacity = max(points[0][0], min(capacity_bytes, points[-1][0]))
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if capacity <= x1:
            return y0 + (y1 - y0) / (x1 - x0) * (capacity - x0)
    return points[-1][1]


@dataclass
class Ledger:
    """Operations and memory traffic of one layer, and their energy in pJ by component."""
    ac: float = 0.0
    mac: float = 0.0
    acc_addr: float = 0.0
    mac_addr: float = 0.0
    inout_pj: float = 0.0
    params_pj: float = 0.0
    potential_pj: float = 0.0
    bytes_moved: float = 0.0

    def access(self, component: str, nbytes: float, capacity: float) -> None:
        setattr(self, component, getattr(self, component) + nbytes * sram_pj_per_byte(capacity))
        self.bytes_moved += nbytes

    def lemaire_pj(self, add_pj: float = LEMAIRE_ADD_PJ, mul_pj: float = LEMAIRE_MUL_PJ) -> dict:
        ops = self.ac * add_pj + self.mac * (mul_pj + add_pj)
        addressing = self.acc_addr * add_pj + self.mac_addr * (mul_pj + add_pj)
        parts = {"ops": ops, "addressing": addressing, "inout": self.inout_pj, "params": self.params_pj,
                 "potential": self.potential_pj}
        return {**parts, "total": sum(parts.values())}


def _parameters(s: dict) -> int:
    """Weights and biases of a convolution (the size of its parameter memory, in words)."""
    return s["weights"] + (s["out_channels"] if s["bias"] else 0)


def _sum(site: Site, key: str, steps: int) -> float:
    counts = site.steps.get(key)
    return 0.0 if counts is None else float(counts[:steps].sum())


def snn_layer(site: Site, steps: int, images: int) -> Ledger:
    """The SNN's work in one layer over ``steps`` steps, per image (Lemaire's rules, extended)."""
    s, n, led = site.sizes, max(images, 1), Ledger()
    if site.kind == "conv":
        events = _sum(site, "events", steps) / n
        reach = events * s["fan"] * s["taps"]
        led.ac += events * s["fan"] * s["stride_taps"] + (s["outputs"] * steps if s["bias"] else 0)
        led.acc_addr += reach
        led.mac_addr += 2 * events
        led.access("inout_pj", WORD * events, WORD * FIFO_WORDS)
        params = _parameters(s)
        led.access("params_pj", WORD * (reach + (s["outputs"] * steps if s["bias"] else 0)), WORD * params)
        for _ in ("read", "write"):
            led.access("potential_pj", WORD * reach, WORD * s["outputs"])
    elif site.kind == "analog-conv":  # the image's convolution, computed once (ImageConv)
        _dense_conv(led, s, write_out=False)
    elif site.kind == "neuron":
        spikes = _sum(site, "spikes", steps) / n
        states = 2 if s["spec"].memory else 1  # with memory: membrane and net spike count
        for _ in range(2 * states):  # read and write every state, every step
            led.access("potential_pj", WORD * s["neurons"] * steps, WORD * s["neurons"] * states)
        led.ac += spikes
        led.access("inout_pj", WORD * spikes, WORD * FIFO_WORDS)
    elif site.kind == "pool":  # running sum of the input, running max, its increment: dense state per step
        led.ac += (s["inputs"] + s["outputs"] * s["taps"]) * steps
        for _ in ("read", "write"):
            led.access("potential_pj", WORD * (s["inputs"] + s["outputs"]) * steps, WORD * (s["inputs"] + s["outputs"]))
    elif site.kind == "head":  # the head's running mean: add and scale every output, every step
        led.ac += 2 * s["outputs"] * steps
        for _ in ("read", "write"):
            led.access("potential_pj", WORD * s["outputs"] * steps, WORD * s["outputs"])
    elif site.kind == "add":
        led.ac += _sum(site, "events", steps) / n
    return led


def _dense_conv(led: Ledger, s: dict, write_out: bool, words: tuple[float, float] = (WORD, WORD)) -> None:
    """A convolution on dense input: Lemaire's ANN rule; ``words`` are the bytes of an activation and a weight."""
    act, weight = words
    led.mac += s["macs"]
    led.acc_addr += s["inputs"] + s["outputs"] + s["out_channels"] * s["taps"]
    led.ac += s["outputs"] if s["bias"] else 0
    led.access("inout_pj", act * s["macs"], act * s["inputs"])
    params = _parameters(s)
    led.access("params_pj", weight * (s["macs"] + (s["outputs"] if s["bias"] else 0)), weight * params)
    if write_out:
        led.access("inout_pj", act * s["outputs"], act * s["outputs"])


def ann_layer(site: Site, words: tuple[float, float] = (WORD, WORD)) -> Ledger:
    """The ANN's work in the same layer, per image: dense convolutions, the activation (one op per element),
    pools comparing, residual adds adding."""
    s, led = site.sizes, Ledger()
    if site.kind in ("conv", "analog-conv"):
        _dense_conv(led, s, write_out=True, words=words)
    elif site.kind == "neuron":
        led.ac += s["neurons"]
    elif site.kind == "pool":
        led.ac += s["outputs"] * (s["taps"] - 1)
    elif site.kind == "add":
        led.ac += s["outputs"]
    return led


def neuron_ops(site: Site, steps: int, images: int) -> float:
    """A neuron layer's updates, per image: per neuron and step one threshold compare (two for signed
    neurons, one more for SNM's memory), per spike one reset subtraction (and one memory update with SNM)."""
    s = site.sizes
    spec = s["spec"]
    compares = 1 + (spec.negative_slope > 0) + spec.memory
    per_spike = 1 + spec.memory
    return compares * s["neurons"] * steps + per_spike * _sum(site, "spikes", steps) / max(images, 1)


def compute_ops(site: Site, steps: int, images: int) -> dict:
    """The compute model's operations in one layer, per image: synaptic accumulates (a burst of n is n; exact
    fan-out), the same as low-bit multiplies (a burst is one), other adds, and MACs (the image's convolution)."""
    s, n = site.sizes, max(images, 1)
    ops = {"synaptic_ac": 0.0, "synaptic_burst_mul": 0.0, "other_ac": 0.0, "mac": 0.0}
    if site.kind == "conv":
        ops["synaptic_ac"] = _sum(site, "synops", steps) / n
        ops["synaptic_burst_mul"] = _sum(site, "synops_burst", steps) / n
        ops["other_ac"] = s["outputs"] * steps if s["bias"] else 0.0
    elif site.kind == "analog-conv":
        ops["mac"], ops["other_ac"] = s["macs"], (s["outputs"] if s["bias"] else 0.0)
    elif site.kind == "neuron":
        ops["other_ac"] = neuron_ops(site, steps, images)
    elif site.kind == "pool":
        ops["other_ac"] = (s["inputs"] + s["outputs"] * s["taps"]) * steps
    elif site.kind == "head":
        ops["other_ac"] = 2 * s["outputs"] * steps
    elif site.kind == "add":
        ops["other_ac"] = _sum(site, "events", steps) / n
    return ops
