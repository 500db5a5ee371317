"""ANN → SNN conversion as named steps: check, fold batch-norm, normalize, replace with spiking layers.

Normalization modes:
  qcfs     θ = λ of each QCFS layer, membrane starts at θ/2 (the low-latency path);
  channel  Spiking-YOLO channel-wise data-based normalization: θ per output channel = a high
           percentile of that channel's activation on calibration images;
  layer    the same with one θ per layer (Diehl et al. 2015; Rueckauer et al. 2017).
Per-channel thresholds with spikes of amplitude θ are the same network as weights scaled by
λ_in/λ_out, biases by 1/λ_out and θ = 1 (the membrane is scaled by λ_out); keeping the weights
unchanged lets residual adds and concats mix tensors of any scale without rescaling.
Leaky-ReLU layers become signed neurons: with memory of their net spike count where the membrane starts
above zero (qcfs: exact, see engine.neuron.signed_memory_step) or with ``snm``, else the classic IBT
neuron (negative threshold θ/α, Spiking-YOLO).
With ``burst`` D > 1 every threshold is divided by D and a neuron may emit up to D spikes per step
(burst spikes): in qcfs mode with D = L the SNN equals the QCFS network from the first step.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from spikeyolo.convert.calibrate import activation_percentiles
from spikeyolo.engine.layers import Accumulate, CumulativeMaxPool, IFNeuron, ReusedMaxPool
from spikeyolo.engine.runner import ImageConv, SpikingDetector
from spikeyolo.quantize.qcfs import QCFS
from spikeyolo.ultra import (CONVERTIBLE, conv_blocks, first_conv_block, fold_batchnorm, head_output_convs,
                             max_pool_uses)

MODES = ("qcfs", "channel", "layer")
SPIKING_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, QCFS, nn.Identity)
DEFAULT_INITIAL_MEMBRANE = {"qcfs": 0.5, "channel": 0.0, "layer": 0.0}


class ConversionError(ValueError):
    """A model that cannot be converted; the message names the modules and what to do."""


def _listing(items: list[str]) -> str:
    return ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")


def check_convertible(model: nn.Module, mode: str) -> None:
    """Refuse unsupported modules and activations, naming them all at once."""
    if mode not in MODES:
        raise ConversionError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    activations = [f"{type(b.act).__name__} at {name}.act" for name, b in conv_blocks(model)
                   if not isinstance(b.act, SPIKING_ACTIVATIONS)]
    if activations:
        raise ConversionError(f"cannot convert {_listing(activations)}: spiking neurons reproduce ReLU-family "
                              f"activations only; retrain with QCFS ('spikeyolo train --levels 4') or a ReLU / "
                              f"leaky-ReLU model yaml")
    modules = [f"{type(m).__name__} at {name}" for name, m in model.named_modules()
               if not isinstance(m, CONVERTIBLE + SPIKING_ACTIVATIONS)]
    if modules:
        raise ConversionError(f"cannot convert {_listing(modules)}: spikeyolo converts Conv, C2f, C3, Bottleneck, SPPF, "
                              f"max-pool, upsample, concat and the Detect head; build the model from those")
    if mode == "qcfs" and not any(isinstance(b.act, QCFS) for _, b in conv_blocks(model)):
        raise ConversionError("mode qcfs needs a QCFS-trained model: use --mode channel or layer with --calib")
    plain = [f"{type(b.act).__name__} at {name}.act" for name, b in conv_blocks(model)
             if mode == "qcfs" and not isinstance(b.act, (QCFS, nn.Identity))]
    if plain:
        raise ConversionError(f"mode qcfs takes θ from QCFS layers, but {_listing(plain)} has none: train every "
                              f"layer with QCFS, or use --mode channel or layer with --calib")


def _negative_slope(act: nn.Module) -> float:
    if isinstance(act, nn.LeakyReLU):
        return float(act.negative_slope)
    return float(getattr(act, "negative_slope", 0.0))


def neuron_thresholds(model: nn.Module, mode: str, stats: dict | None) -> dict[str, torch.Tensor]:
    """θ per spiking layer: λ (qcfs), or the calibration percentile per channel / per layer."""
    thresholds = {}
    for name, block in conv_blocks(model):
        if isinstance(block.act, nn.Identity):
            continue
        if mode == "qcfs":
            thresholds[name] = block.act.threshold.detach().abs().clamp_min(1e-4).float().clone()  # as QCFS runs
            continue
        layer = stats[name]["layer"].clamp_min(1e-3)
        if mode == "layer":
            thresholds[name] = layer
        else:  # channels that never fire on calibration data fall back to the layer's value
            channel = stats[name]["channel"]
            thresholds[name] = torch.where(channel > 1e-3 * layer, channel, layer)
    return thresholds


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the module called ``name`` is (keeping ultralytics' graph bookkeeping)."""
    parent_name, _, key = name.rpartition(".")
    _replace(model.get_submodule(parent_name) if parent_name else model, key, new)


def _replace(parent: nn.Module, key: str, new: nn.Module) -> None:
    old = parent[int(key)] if isinstance(parent, (nn.Sequential, nn.ModuleList)) else getattr(parent, key)
    for attr in ("f", "i", "type", "np"):  # ultralytics graph bookkeeping on top-level layers
        if hasattr(old, attr):
            setattr(new, attr, getattr(old, attr))
    if isinstance(parent, (nn.Sequential, nn.ModuleList)):
        parent[int(key)] = new
    else:
        setattr(parent, key, new)


def needs_memory(negative_slope: float, initial_membrane: float) -> bool:
    """A signed neuron whose membrane starts above zero is exact and stable only with memory."""
    return negative_slope > 0 and initial_membrane != 0


def spikify(model: nn.Module, thresholds: dict, slopes: dict, initial_membrane: float,
            backend: str = "torch", burst: int = 1, snm: bool = False) -> nn.Module:
    """Swap activations for IF/IBT neurons, max-pools for cumulative max-pools, head convs for accumulators.

    ``snm`` gives every neuron a memory of its net spike count; signed (leaky) layers get it anyway when
    their membrane starts above zero (``needs_memory``).
    """
    for name, block in conv_blocks(model):
        if name in thresholds:
            slope = slopes.get(name, 0.0)
            memory = snm or needs_memory(slope, initial_membrane)
            block.act = IFNeuron(thresholds[name], initial_membrane, slope, backend, burst, memory)
    for name, uses in max_pool_uses(model).items():
        pool = model.get_submodule(name)
        parent_name, _, key = name.rpartition(".")
        spiking = CumulativeMaxPool(pool) if uses == 1 else ReusedMaxPool(pool, uses)
        _replace(model.get_submodule(parent_name), key, spiking)
    for branch, index in head_output_convs(model):
        branch[index] = Accumulate(branch[index])
    first = first_conv_block(model)
    first.conv = ImageConv(first.conv)
    return model


def convert(model: nn.Module, mode: str = "qcfs", calibration=None, percentile: float = 99.9,
            initial_membrane: float | None = None, backend: str = "torch", burst: int = 1,
            snm: bool = False) -> SpikingDetector:
    """Convert a trained ANN detector (left untouched) into a SpikingDetector (``snm``: signed neurons)."""
    if burst < 1:
        raise ConversionError(f"burst must be >= 1, got {burst}")
    net = copy.deepcopy(model).float().eval()
    check_convertible(net, mode)
    fold_batchnorm(net)
    stats = None
    if mode != "qcfs":
        if calibration is None:
            raise ConversionError(f"mode {mode} needs calibration images: pass --calib DATA")
        stats = activation_percentiles(net, calibration, percentile)
    thresholds = {name: theta / burst for name, theta in neuron_thresholds(net, mode, stats).items()}
    slopes = {name: _negative_slope(block.act) for name, block in conv_blocks(net)}
    v0 = DEFAULT_INITIAL_MEMBRANE[mode] if initial_membrane is None else initial_membrane
    spikify(net, thresholds, slopes, v0, backend, burst, snm)
    meta = {"mode": mode, "percentile": percentile if stats else None, "initial_membrane": v0, "burst": burst,
            "snm": snm,
            "neurons": {n: net.get_submodule(n).act.spec.as_dict() for n in thresholds}}
    return SpikingDetector(net, meta)
