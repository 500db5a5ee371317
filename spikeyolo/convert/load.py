"""One path from a weights file to a running network, with one set of defaults, for every command and the API.

``read_weights`` reads a file's metadata once into a ``WeightsFile``; ``load_model`` builds from it the ANN and/or
the SNN (an SNN artifact as converted; a detector checkpoint converted here). Defaults: QCFS weights convert in
``qcfs`` mode with bursts of up to L spikes (the SNN equals the QCFS network from T = 1); other weights in
``channel`` mode with binary spikes (calibration images needed). ``describe_neurons`` says which neurons run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from spikeyolo.checkpoint import FORMAT as DETECTOR_FORMAT
from spikeyolo.checkpoint import SNN_FORMATS, CheckpointError, read_metadata
from spikeyolo.quantize.checkpoint import load_detector
from spikeyolo.convert.artifact import check_asked, load_snn
from spikeyolo.convert.convert import convert


@dataclass
class WeightsFile:
    """A spikeyolo weights file and its metadata, read once: a detector checkpoint or a converted SNN."""
    path: Path
    meta: dict

    @property
    def is_snn(self) -> bool:
        return self.meta["format"] in SNN_FORMATS

    @property
    def names(self) -> list[str]:
        return list(self.meta["names"])

    @property
    def source(self) -> dict:
        """The detector checkpoint's metadata an SNN was converted from (its own for a checkpoint)."""
        return self.meta.get("source", {}) if self.is_snn else self.meta

    @property
    def levels(self) -> int | None:
        return self.source.get("levels") if self.is_snn else self.meta["quantization"].get("levels")

    @property
    def imgsz(self) -> int:
        return int(self.source.get("imgsz") or 640)


def read_weights(path: str | Path) -> WeightsFile:
    """A detector checkpoint's or an SNN artifact's metadata, read once."""
    return WeightsFile(Path(path), read_metadata(path, (DETECTOR_FORMAT, *SNN_FORMATS)))


def default_settings(weights: WeightsFile, mode: str | None, burst: int | None) -> tuple[str, int]:
    """(mode, burst) to convert a checkpoint with: qcfs and bursts of L for QCFS weights, else channel, binary."""
    mode = mode or ("qcfs" if weights.levels else "channel")
    return mode, burst if burst is not None else (weights.levels if mode == "qcfs" else 1)


@dataclass
class LoadedModel:
    """What ``load_model`` built: the ANN (None if not asked or not found) and the SNN, with their settings."""
    weights: WeightsFile
    ann: nn.Module | None
    snn: object | None  # a SpikingDetector
    settings: dict = field(default_factory=dict)  # mode, burst, snm, imgsz, levels, neurons


def load_model(weights: str | Path | WeightsFile, device: str | torch.device = "cpu", *, ann: bool = True,
               snn: bool = True, mode: str | None = None, burst: int | None = None, snm: bool = False,
               calibration: Callable[[int], list] | None = None, percentile: float = 99.9,
               initial_membrane: float | None = None, imgsz: int | None = None,
               backend: str = "torch", ann_weights: str | Path | None = None) -> LoadedModel:
    """The networks of a weights file. ``calibration(imgsz)`` gives image batches for channel / layer modes. An SNN
    artifact keeps its mode, burst and SNM (others asked for are one CheckpointError); its ANN is ``ann_weights``
    when given, else the checkpoint it names when that lies in the artifact's own folder (None otherwise)."""
    weights = weights if isinstance(weights, WeightsFile) else read_weights(weights)
    imgsz = imgsz or weights.imgsz
    if weights.is_snn:
        if ann and not snn:
            raise CheckpointError(f"{weights.path} is a converted SNN: the ANN needs the detector checkpoint")
        spiking = load_snn(weights.path, device, backend, meta=weights.meta)
        check_asked(spiking, weights.path, burst, snm, mode)
        source = Path(ann_weights) if ann_weights else _source_beside(weights)
        network = load_detector(source, device)[0] if ann and source else None
        return LoadedModel(weights, network, spiking, _settings(spiking, imgsz, weights.levels))
    network, _ = load_detector(weights.path, device, meta=weights.meta)
    if not snn:
        return LoadedModel(weights, network, None, {"imgsz": imgsz, "levels": weights.levels})
    mode, burst = default_settings(weights, mode, burst)
    batches = None
    if mode != "qcfs":
        batches = [b.to(device) for b in calibration(imgsz)] if calibration else None
    spiking = convert(network, mode, batches, percentile, initial_membrane, backend=backend, burst=burst, snm=snm)
    return LoadedModel(weights, network if ann else None, spiking.to(device), _settings(spiking, imgsz, weights.levels))


def _source_beside(weights: WeightsFile) -> Path | None:
    """The detector checkpoint an SNN was converted from, when it lies in the artifact's own folder (as convert
    writes it by default): a path in a stranger's metadata is never followed anywhere else on the machine."""
    named = Path(str(weights.source.get("weights") or ""))
    candidate = weights.path.parent / named.name
    return candidate if named.name and candidate.is_file() and candidate != weights.path else None


def _settings(snn, imgsz: int, levels: int | None) -> dict:
    meta = snn.meta
    tuning = meta.get("tuning") or {}
    return {"mode": meta["mode"], "burst": meta["burst"], "snm": meta["snm"], "imgsz": imgsz, "levels": levels,
            "neurons": describe_neurons(snn), **({"tuned_for_timesteps": tuning.get("timesteps"),
                                                  "tuning": tuning.get("method")} if tuning else {})}


NEURON_NAMES = {"if": "IF", "ibt": "IBT (signed)", "snm": "signed neurons with memory",
                "signed-snm": "signed leaky neurons with memory"}


def describe_neurons(snn) -> str:
    """Which neurons run, in words: e.g. 'IF + signed leaky neurons with memory, bursts of up to 4 spikes'."""
    kinds = sorted({neuron.kind for _, neuron in snn.neurons()}, key=list(NEURON_NAMES).index)
    burst = max((neuron.max_spikes for _, neuron in snn.neurons()), default=1)
    spikes = f"bursts of up to {burst} spikes" if burst > 1 else "binary spikes"
    return " + ".join(NEURON_NAMES[k] for k in kinds) + f", {spikes}"
