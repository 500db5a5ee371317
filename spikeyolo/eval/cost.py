"""The cost report: the SNN at every T beside three ANN baselines, under two named energy models.

Counting (``counting.EventGraph``): a burst of n spikes is n events and n accumulates per synapse (the
headline); the same spikes as one low-bit multiply per synapse are reported beside it. Residual adds,
max-pools, the head's running mean and every neuron update (compare, reset, SNM's memory) cost operations;
membranes and other state are read and written every step. The image's convolution is computed once.
Energy (``energy``): the compute-only 45 nm model and the memory-aware Lemaire model. Baselines on the same
images and graph: the ANN in float32, the ANN as int8, and the QCFS network as an L-level network
(⌈log2(L+1)⌉-bit activations, int8 weights; a b-bit multiply priced as b/8 of an int8 one).
"""
from __future__ import annotations

import math

from spikeyolo.engine.runner import SpikingDetector
from spikeyolo.eval.counting import EventGraph
from spikeyolo.eval.energy import (COMPUTE_PRESETS, LEMAIRE_ADD_PJ, LEMAIRE_MUL_PJ, WORD, Ledger, ann_layer,
                                   compute_ops, snn_layer)

E_AC_PJ, E_MAC_PJ = COMPUTE_PRESETS["fp32"]
INT8_ADD_PJ, INT8_MUL_PJ = 0.03, 0.2  # Horowitz 2014, 45 nm
MODELS = {
    "compute": "compute only, 45 nm (Horowitz 2014): fp32 0.9 pJ/AC, 4.6 pJ/MAC (presets fp16 0.4/1.5, "
               "int8 0.03/0.23); memory free",
    "lemaire": "Lemaire et al. 2022 as SpikingJelly 2.0 counts it: 32-bit int ops (0.1 pJ add, 3.1 pJ mul), "
               "addressing, SRAM traffic of inputs/outputs, weights and membranes priced by memory size "
               "(10/20/100 pJ per word at 8 kB/32 kB/1 MB); no DRAM",
}


def _mj(pj: float) -> float:
    return pj * 1e-9


class CostMeter:
    """Counts a SpikingDetector's work over the batches it runs; ``report`` prices it at each T."""

    def __init__(self, snn: SpikingDetector, levels: int | None = None):
        self.snn, self.levels = snn, levels
        self.graph = EventGraph(snn)

    @property
    def images(self) -> int:
        return self.graph.images

    def close(self) -> None:
        self.graph.close()

    def after_batch(self, images, snn: SpikingDetector | None = None) -> None:
        self.graph.after_batch(images)

    def _snn_at(self, steps: int) -> dict:
        sites, n = self.graph.sites.values(), self.images
        ops = {"synaptic_ac": 0.0, "synaptic_burst_mul": 0.0, "other_ac": 0.0, "mac": 0.0}
        for site in sites:
            for key, value in compute_ops(site, steps, n).items():
                ops[key] += value
        lemaire = _total([snn_layer(site, steps, n) for site in sites])
        spikes = sum(float(s.steps["spikes"][:steps].sum()) for s in sites if s.kind == "neuron") / max(n, 1)
        neurons = sum(s.sizes["neurons"] for s in sites if s.kind == "neuron")
        burst = max((s.sizes["spec"].max_spikes for s in sites if s.kind == "neuron"), default=1)
        burst_bits = max(1, math.ceil(math.log2(burst + 1)))
        by_preset = {name: _mj((ops["synaptic_ac"] + ops["other_ac"]) * ac + ops["mac"] * mac)
                     for name, (ac, mac) in COMPUTE_PRESETS.items()}
        burst_mul = _mj(ops["synaptic_burst_mul"] * burst_bits * E_AC_PJ + ops["other_ac"] * E_AC_PJ
                        + ops["mac"] * E_MAC_PJ)
        return {"sops": ops["synaptic_ac"], "sops_burst": ops["synaptic_burst_mul"], "other_ops": ops["other_ac"],
                "spikes": spikes, "firing_rate": spikes / max(neurons * steps, 1),
                "energy_mj": by_preset["fp32"], "energy_burst_multiply_mj": burst_mul,
                "energy_by_preset_mj": by_preset, "energy_lemaire_mj": _mj(lemaire["total"]),
                "lemaire_breakdown_mj": {k: _mj(v) for k, v in lemaire.items() if k not in ("total", "bytes")},
                "bytes_moved": lemaire["bytes"]}

    def _baselines(self) -> dict:
        sites = list(self.graph.sites.values())
        out = {"ann_fp32": self._ann(sites, (WORD, WORD), E_AC_PJ, E_MAC_PJ, LEMAIRE_ADD_PJ, LEMAIRE_MUL_PJ),
               "ann_int8": self._ann(sites, (1, 1), INT8_ADD_PJ, INT8_ADD_PJ + INT8_MUL_PJ, INT8_ADD_PJ, INT8_MUL_PJ)}
        if self.levels:
            bits = math.ceil(math.log2(self.levels + 1))
            mul = INT8_MUL_PJ * bits / 8
            out[f"qcfs_{bits}bit"] = self._ann(sites, (bits / 8, 1), INT8_ADD_PJ, INT8_ADD_PJ + mul, INT8_ADD_PJ, mul)
        return out

    @staticmethod
    def _ann(sites, words, ac_pj, mac_pj, add_pj, mul_pj) -> dict:
        ledgers = [ann_layer(site, words) for site in sites]
        lemaire = _total(ledgers, add_pj, mul_pj)
        macs, acs = sum(l.mac for l in ledgers), sum(l.ac for l in ledgers)
        return {"macs": macs, "other_ops": acs, "energy_mj": _mj(macs * mac_pj + acs * ac_pj),
                "energy_lemaire_mj": _mj(lemaire["total"]), "bytes_moved": lemaire["bytes"],
                "lemaire_breakdown_mj": {k: _mj(v) for k, v in lemaire.items() if k not in ("total", "bytes")}}

    def _layers(self, steps: int) -> list[dict]:
        """Per layer at the largest T: its kind, rate, operations and energy (SNN and ANN fp32, both models)."""
        rows, n = [], self.images
        for site in self.graph.sites.values():
            ops = compute_ops(site, steps, n)
            ann = ann_layer(site)
            row = {"name": site.name, "kind": site.kind, "sops": ops["synaptic_ac"],
                   "energy_mj": _mj((ops["synaptic_ac"] + ops["other_ac"]) * E_AC_PJ + ops["mac"] * E_MAC_PJ),
                   "energy_lemaire_mj": _mj(snn_layer(site, steps, n).lemaire_pj()["total"]),
                   "ann_energy_mj": _mj(ann.mac * E_MAC_PJ + ann.ac * E_AC_PJ),
                   "ann_energy_lemaire_mj": _mj(ann.lemaire_pj()["total"])}
            if site.kind == "neuron":
                spikes = float(site.steps["spikes"][:steps].sum()) / max(n, 1)
                row.update(neurons=site.sizes["neurons"], neuron=site.sizes["spec"].kind,
                           firing_rate=spikes / max(site.sizes["neurons"] * steps, 1))
            rows.append(row)
        return rows

    def report(self, timesteps: list[int]) -> dict:
        """Cost at each T (per image), the baselines, and the per-layer table at the largest T."""
        sites = self.graph.sites.values()
        horizon = max(timesteps)
        layers = self._layers(horizon)
        baselines = self._baselines()
        state = sum(s.sizes["neurons"] * (1 + s.sizes["spec"].memory) for s in sites if s.kind == "neuron")
        state += sum(s.sizes["inputs"] + s.sizes["outputs"] for s in sites if s.kind == "pool")
        state += sum(s.sizes["outputs"] for s in sites if s.kind == "head")
        return {"per_timestep": {t: self._snn_at(t) for t in timesteps}, "baselines": baselines,
                "ann_macs": baselines["ann_fp32"]["macs"], "ann_energy_mj": baselines["ann_fp32"]["energy_mj"],
                "first_layer_macs": sum(s.sizes["macs"] for s in sites if s.kind == "analog-conv"),
                "neuron_layers": [r for r in layers if r["kind"] == "neuron"],
                "layer_costs": layers, "parameters": sum(p.numel() for p in self.snn.net.parameters()),
                "neuron_state_bytes_per_image": state * WORD, "energy_models": MODELS,
                "energy_model": f"headline: {MODELS['compute']}; a burst of n spikes counts n accumulates"}


def _total(ledgers: list[Ledger], add_pj: float = LEMAIRE_ADD_PJ, mul_pj: float = LEMAIRE_MUL_PJ) -> dict:
    parts = [ledger.lemaire_pj(add_pj, mul_pj) for ledger in ledgers]
    total = {key: sum(p[key] for p in parts) for key in parts[0]} if parts else {"total": 0.0}
    return {**total, "bytes": sum(ledger.bytes_moved for ledger in ledgers)}
