"""SNN artifacts: the converted network as safetensors plus readable metadata.

The metadata describes the spiking graph in full (``graph``: each neuron layer's NeuronSpec, the max-pools and
how often each is applied, the head's accumulators, the image's convolution), so a file is rebuilt from what it
says, not by re-running today's converter: the format is versioned by ``spikeyolo.checkpoint.SNN_FORMAT``
(older versions are read by the converter's rules of their time; newer ones are refused in one line).
The number of timesteps is not stored: it is chosen when the network runs.
"""
from __future__ import annotations

from pathlib import Path

import torch

from spikeyolo.checkpoint import (SNN_FORMAT, SNN_FORMATS, CheckpointError, read_metadata, read_tensors,
                                  write_safetensors)
from spikeyolo.convert.convert import replace_module, spikify
from spikeyolo.engine.layers import Accumulate, CumulativeMaxPool, IFNeuron, NeuronSpec, ReusedMaxPool
from spikeyolo.engine.runner import ImageConv, SpikingDetector
from spikeyolo.quantize.qcfs import QCFS
from spikeyolo.ultra import build_detection_model, fold_batchnorm



def save_snn(detector: SpikingDetector, path: str | Path, source: dict | None = None, tuning: dict | None = None) -> Path:
    """Write a converted detector; per-layer thresholds are summarized in the metadata, stored in full as tensors;
    ``tuning``: how ``spikeyolo tune`` changed it after conversion (kept by later saves of the loaded network)."""
    net = detector.net
    names = [net.names[i] for i in sorted(net.names)]
    neurons = {}
    for name, neuron in detector.neurons():
        block = name.rsplit(".act", 1)[0]
        theta = neuron.threshold.float()
        neurons[block] = {**detector.meta["neurons"][block], "per_channel": theta.dim() == 1,
                          "threshold_mean": round(float(theta.mean()), 6), "threshold_max": round(float(theta.max()), 6)}
    meta = {"format": SNN_FORMAT, "model_yaml": net.yaml, "names": names, **detector.meta, "neurons": neurons,
            "graph": describe_graph(net), "source": source or {}}
    tuning = tuning or detector.meta.get("tuning")
    if tuning:
        meta["tuning"] = tuning
    state = {k: v.float() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    return write_safetensors(state, path, meta)


def describe_graph(net: torch.nn.Module) -> dict:
    """The spiking graph of a converted detector, by module name: neurons (block → NeuronSpec), max-pools (→ uses
    per chunk), the head's accumulators and the image's convolution."""
    modules = list(net.named_modules())
    return {"neurons": {name.rsplit(".act", 1)[0]: m.spec.as_dict() for name, m in modules if isinstance(m, IFNeuron)},
            "pools": {name: len(m.pools) if isinstance(m, ReusedMaxPool) else 1 for name, m in modules
                      if isinstance(m, ReusedMaxPool) or (isinstance(m, CumulativeMaxPool) and ".pools." not in name)},
            "accumulators": [name for name, m in modules if isinstance(m, Accumulate)],
            "constant_input": [name for name, m in modules if isinstance(m, ImageConv)]}


def _module(net: torch.nn.Module, name: str, kind, path) -> torch.nn.Module:
    try:
        module = net.get_submodule(name)
    except AttributeError:
        module = None
    if not isinstance(module, kind):
        raise CheckpointError(f"{path}: its graph names {name!r}, which is not a {kind.__name__} of its own model: "
                              "the file is damaged or not from spikeyolo")
    return module


def build_from_graph(net: torch.nn.Module, graph: dict, backend: str, path) -> None:
    """Place the spiking layers a /3 artifact describes into its (BN-folded) model; anything left unconverted is
    an error (the description must be whole)."""
    for block, spec in graph["neurons"].items():
        _module(net, block, torch.nn.Module, path).act = IFNeuron.from_spec(NeuronSpec.from_dict(spec), backend=backend)
    for name, uses in graph["pools"].items():
        pool = _module(net, name, torch.nn.MaxPool2d, path)
        replace_module(net, name, CumulativeMaxPool(pool) if uses == 1 else ReusedMaxPool(pool, uses))
    for name in graph["accumulators"]:
        replace_module(net, name, Accumulate(_module(net, name, torch.nn.Conv2d, path)))
    for name in graph["constant_input"]:
        replace_module(net, name, ImageConv(_module(net, name, torch.nn.Conv2d, path)))
    wrapped = {id(m.pool) for m in net.modules() if isinstance(m, CumulativeMaxPool)}
    left = [name for name, m in net.named_modules() if isinstance(m, (QCFS, torch.nn.ReLU, torch.nn.LeakyReLU))
            or (isinstance(m, torch.nn.MaxPool2d) and id(m) not in wrapped)]
    if left or len(graph["constant_input"]) != 1:
        raise CheckpointError(f"{path}: its graph leaves {left[0] if left else 'the image convolution'} "
                              "unconverted: the file is damaged or not from spikeyolo")


def load_snn(path: str | Path, device: str | torch.device = "cpu", backend: str = "torch",
             meta: dict | None = None) -> SpikingDetector:
    """Rebuild a SpikingDetector from an artifact written by save_snn (``meta``: its metadata, already read)."""
    meta = meta or read_metadata(path, SNN_FORMATS)
    if meta["format"] == "spikeyolo-snn/1" and meta["initial_membrane"] != 0 and any(
            spec["negative_slope"] > 0 for spec in meta["neurons"].values()):
        raise CheckpointError(f"{path} ({meta['format']}) has leaky layers converted with the old IBT neurons, one "
                              "level off from their QCFS twin: convert the detector checkpoint again")
    net = build_detection_model(meta["model_yaml"], nc=len(meta["names"]))
    fold_batchnorm(net)
    if meta["format"] == SNN_FORMAT:
        build_from_graph(net, meta["graph"], backend, path)
    else:  # /1 and /2 carry no graph: the converter's rules, as they were then
        thresholds = {name: torch.ones(spec["channels"]) if spec["per_channel"] else torch.tensor(1.0)
                      for name, spec in meta["neurons"].items()}
        slopes = {name: spec["negative_slope"] for name, spec in meta["neurons"].items()}
        spikify(net, thresholds, slopes, meta["initial_membrane"], backend, meta.get("burst", 1), meta.get("snm", False))
    try:
        net.load_state_dict(read_tensors(path), strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match its own network description: {str(err)[:200]}") from err
    net.names = dict(enumerate(meta["names"]))
    keep = ("mode", "percentile", "initial_membrane", "burst", "snm", "neurons", "source", "tuning")
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
