"""SNN artifacts: the converted network as safetensors plus readable metadata.

The number of timesteps is not stored: it is chosen when the network runs.
"""
from __future__ import annotations

from pathlib import Path

import torch

from spikeyolo.checkpoint import (SNN_FORMAT, SNN_FORMATS, CheckpointError, read_metadata, read_tensors,
                                  write_safetensors)
from spikeyolo.convert.convert import spikify
from spikeyolo.engine.runner import SpikingDetector
from spikeyolo.ultra import build_detection_model, fold_batchnorm



def save_snn(detector: SpikingDetector, path: str | Path, source: dict | None = None) -> Path:
    """Write a converted detector; per-layer thresholds are summarized in the metadata, stored in full as tensors."""
    net = detector.net
    names = [net.names[i] for i in sorted(net.names)]
    neurons = {}
    for name, neuron in detector.neurons():
        block = name.rsplit(".act", 1)[0]
        theta = neuron.threshold.float()
        neurons[block] = {**detector.meta["neurons"][block], "per_channel": theta.dim() == 1,
                          "threshold_mean": round(float(theta.mean()), 6), "threshold_max": round(float(theta.max()), 6)}
    meta = {"format": SNN_FORMAT, "model_yaml": net.yaml, "names": names, **detector.meta, "neurons": neurons,
            "source": source or {}}
    state = {k: v.float() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    return write_safetensors(state, path, meta)


def load_snn(path: str | Path, device: str | torch.device = "cpu", backend: str = "torch",
             meta: dict | None = None) -> SpikingDetector:
    """Rebuild a SpikingDetector from an artifact written by save_snn (``meta``: its metadata, already read)."""
    meta = meta or read_metadata(path, SNN_FORMATS)
    if meta["format"] != SNN_FORMAT and meta["initial_membrane"] != 0 and any(
            spec["negative_slope"] > 0 for spec in meta["neurons"].values()):
        raise CheckpointError(f"{path} ({meta['format']}) has leaky layers converted with the old IBT neurons, one "
                              "level off from their QCFS twin: convert the detector checkpoint again")
    net = build_detection_model(meta["model_yaml"], nc=len(meta["names"]))
    fold_batchnorm(net)
    thresholds = {name: torch.ones(spec["channels"]) if spec["per_channel"] else torch.tensor(1.0)
                  for name, spec in meta["neurons"].items()}
    slopes = {name: spec["negative_slope"] for name, spec in meta["neurons"].items()}
    spikify(net, thresholds, slopes, meta["initial_membrane"], backend, meta.get("burst", 1), meta.get("snm", False))
    try:
        net.load_state_dict(read_tensors(path), strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match its own network description: {str(err)[:200]}") from err
    net.names = dict(enumerate(meta["names"]))
    keep = ("mode", "percentile", "initial_membrane", "burst", "snm", "neurons", "source")
    defaults = {"burst": 1, "snm": False}
    return SpikingDetector(net.to(device).eval(), {k: meta.get(k, defaults.get(k)) for k in keep})


def check_asked(snn: SpikingDetector, path: str | Path, burst: int | None, snm: bool, mode: str | None = None) -> None:
    """A converted SNN's mode, burst and SNM were fixed at conversion: a CheckpointError if others are asked for."""
    fixed = snn.meta
    wrong = ([f"--mode {mode}"] if mode is not None and mode != fixed["mode"] else []) + \
        ([f"--burst {burst}"] if burst is not None and burst != fixed["burst"] else []) + \
        (["--snm"] if snm and not fixed["snm"] else [])
    if wrong:
        raise CheckpointError(f"{path} is an SNN converted in {fixed['mode']} mode with burst {fixed['burst']}"
                              f"{' and SNM' if fixed['snm'] else ''}: for {' '.join(wrong)} use the detector "
                              "checkpoint, or convert again with them (spikeyolo convert … --mode M --burst D "
                              "[--snm])")
