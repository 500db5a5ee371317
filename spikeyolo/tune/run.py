"""`spikeyolo tune` as a Python API: a converted detector tuned for ±1 spikes at a target T, resumable.

Two stages, each optional: bias correction (``tune.calibrate``, training-free, a few hundred images) and hybrid
fine-tuning with surrogate gradients taught by the ANN and the labels (``tune.distill``, the train split).
Progress is written to ``<out>.resume.safetensors`` (the network, the optimizer and where it stopped) after
every few calibrated layers and every epoch; a run with the same settings continues from there, and the file is
removed once the tuned artifact is written. The artifact's metadata says how it was tuned (``tuning``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from spikeyolo.checkpoint import read_metadata, read_tensors, write_safetensors
from spikeyolo.convert.artifact import save_snn
from spikeyolo.convert.load import load_model, read_weights
from spikeyolo.data import prepare_dataset
from spikeyolo.data.images import flip_labels, image_batches, labelled_batches, split_images
from spikeyolo.device import torch_device
from spikeyolo.tune.calibrate import calibration_targets, correct_biases
from spikeyolo.tune.distill import LOSSES, Distiller, per_channel_thresholds
from spikeyolo.tune.distributed import Ranks

RESUME_FORMAT = "spikeyolo-tune-resume/1"
MAX_LAYERS_CALIBRATED = 10_000  # a resume file's calibrated layers (a detector has ~60)
SAVE_EVERY_LAYERS = 8


@dataclass(frozen=True)
class TuneSettings:
    """Everything that decides the result: a resume file is only continued with equal settings."""
    weights: str
    data: str
    timesteps: int
    burst: int = 1
    snm: bool = False
    calibrate: bool = True
    calib_images: int = 64
    epochs: int = 6
    lr: float = 6e-4
    batch: int = 8
    images: int | None = None  # training images (default: the whole train split)
    imgsz: int | None = None
    sharpness: float = 4.0
    feature_weight: float = 0.0
    thresholds: bool = False  # train θ per channel too (DIET-SNN)
    readouts: tuple[int, ...] | None = None  # steps whose head outputs are distilled (default: T only)
    loss: str = "anchors"  # distillation_loss's balance: "anchors" or "objects" (docs/results.md: no better on BCCD)
    label_gain: float = 0.1  # the labels' detection loss (ultralytics'), × this, joins the distillation (0: none)
    seed: int = 0
    train_split: str | None = None  # the dataset's own split name (default: the layout's standard)


@dataclass
class Progress:
    calibrated_layers: int = 0
    calibration_done: bool = False
    epochs_done: int = 0
    losses: list | None = None
    seconds: float = 0.0


def describe_method(settings: TuneSettings) -> str:
    """The stages a run applies, in words (the artifact's ``tuning.method``)."""
    stages = (["bias correction (Li et al. 2021)"] if settings.calibrate else []) + \
        (["hybrid fine-tuning, distilled from the ANN (Rathi et al. 2020)" +
          (f", every spiking layer's rate against its ANN activation × {settings.feature_weight:g}"
           if settings.feature_weight else "") +
          (", thresholds per channel trained too (DIET-SNN)" if settings.thresholds else "") +
          (f", read out after steps {', '.join(map(str, settings.readouts))}" if settings.readouts else "") +
          (", class loss per object" if settings.loss == "objects" else "") +
          (f", + {settings.label_gain:g} × the labels' detection loss" if settings.label_gain else "")]
         if settings.epochs > 0 else [])
    return " + ".join(stages) or "none (converted only)"


def resume_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume.safetensors")


def _save_progress(path: Path, snn, distiller, settings: TuneSettings, progress: Progress) -> None:
    state = {f"net.{k}": v for k, v in snn.net.state_dict().items()}
    if distiller is not None:
        state.update({f"optim.{k}": v for k, v in distiller.state().items()})
    write_safetensors(state, path, {"format": RESUME_FORMAT, "settings": asdict(settings),
                                    "progress": asdict(progress)})


def _load_progress(path: Path, settings: TuneSettings):
    """(Progress, tensors) of a resume file made with ``settings``; None when there is none; a ValueError naming
    the file when it was made with other settings."""
    if not path.is_file():
        return None
    meta = read_metadata(path, RESUME_FORMAT)
    if meta.get("settings") != json.loads(json.dumps(asdict(settings))):
        raise ValueError(f"{path} is the progress of a tune run with other settings: run with the same settings to "
                         "continue it, or delete it to start over")
    progress = _checked_progress(meta.get("progress"), settings)
    if progress is None:
        raise ValueError(f"{path}: its progress record is damaged: delete it to start over")
    tensors = read_tensors(path)
    if progress.epochs_done and not any(k.startswith("optim.") for k in tensors):
        raise ValueError(f"{path}: {progress.epochs_done} epochs done but no optimizer state to continue them: the "
                         "file is damaged; delete it to start over")
    return progress, tensors


def _checked_progress(record, settings: TuneSettings) -> Progress | None:
    """The progress record of a resume file if every field is what a run writes (None otherwise): counts within the
    run's own (no more epochs done than the run has), a finite time, one finite loss per epoch done."""
    try:
        progress = Progress(**record)
    except TypeError:
        return None
    whole = (lambda v, high: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= high)
    number = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0)
    losses = progress.losses or []
    fits = (whole(progress.calibrated_layers, MAX_LAYERS_CALIBRATED) and isinstance(progress.calibration_done, bool)
            and whole(progress.epochs_done, settings.epochs) and number(progress.seconds)
            and isinstance(losses, list) and len(losses) == progress.epochs_done
            and all(number(loss) for loss in losses))
    return progress if fits else None


def _restore(snn, tensors: dict, path: Path) -> dict:
    try:
        snn.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit this network ({str(err)[:120]}): delete it to start over") from None
    return {k[6:]: v for k, v in tensors.items() if k.startswith("optim.")}


def _batches(files: list[Path], imgsz: int, batch: int, device) -> list[torch.Tensor]:
    return [images.to(device) for images in image_batches(files, imgsz, batch)]


def _calibrate(snn, ann, settings, files, imgsz, progress, save) -> None:
    """Bias correction from where it stopped, saving progress every SAVE_EVERY_LAYERS layers."""
    batches = _batches(files[:settings.calib_images], imgsz, settings.batch, next(ann.parameters()).device)
    layers = len(calibration_targets(snn))
    with tqdm(total=layers, initial=progress.calibrated_layers, desc=f"tune: bias correction at T={settings.timesteps}",
              unit="layer") as bar:
        def done(_name):
            progress.calibrated_layers += 1
            bar.update(1)
            if progress.calibrated_layers % SAVE_EVERY_LAYERS == 0:
                save(None)
        correct_biases(snn, ann, batches, settings.timesteps, done, start=progress.calibrated_layers)
    progress.calibration_done = True
    save(None)


def _epoch_batches(files: list[Path], imgsz: int, classes: int, settings: TuneSettings):
    """(images, labels) batches of one epoch; without a label gain the labels are not read (None)."""
    if settings.label_gain:
        return labelled_batches(files, imgsz, classes, settings.batch)
    return ((images, None) for images in image_batches(files, imgsz, settings.batch))


def _finetune(snn, ann, settings, files, imgsz, progress, optim_state, save, ranks: Ranks = Ranks()) -> None:
    """Distillation epochs from where it stopped (a resumed run continues its optimizer and its image order)."""
    steps_per_epoch = -(-len(files) // settings.batch)
    distiller = Distiller(snn, ann, settings.timesteps, settings.lr, steps_per_epoch * settings.epochs,
                          settings.sharpness, settings.feature_weight, settings.thresholds, settings.readouts,
                          settings.loss, settings.label_gain, ranks)
    if optim_state:
        try:
            distiller.load_state(optim_state)
        except (KeyError, ValueError, RuntimeError) as err:
            raise ValueError(f"the resume file's optimizer state is damaged ({str(err)[:80]}): delete it to "
                             "start over") from None
    classes = int(ann.model[-1].nc)
    distiller.train_mode(True)
    try:
        for epoch in range(progress.epochs_done, settings.epochs):
            order = torch.randperm(len(files), generator=torch.Generator().manual_seed(settings.seed + epoch))
            losses = []
            with tqdm(total=steps_per_epoch, desc=f"tune: epoch {epoch + 1}/{settings.epochs}", unit="batch",
                      disable=not ranks.first) as bar:
                for images, targets in _epoch_batches([files[i] for i in order], imgsz, classes, settings):
                    images = images.to(next(ann.parameters()).device)
                    coin = torch.Generator().manual_seed(settings.seed + distiller.steps_done)  # resumable
                    if torch.rand((), generator=coin) < 0.5:  # the teacher (and the labels) see the same flip
                        images, targets = images.flip(-1), (flip_labels(targets) if targets else None)
                    losses.append(distiller.step(images, targets))
                    bar.set_postfix(loss=f"{sum(losses) / len(losses):.4f}")
                    bar.update(1)
            progress.epochs_done = epoch + 1
            progress.losses = (progress.losses or []) + [round(sum(losses) / len(losses), 5)]
            distiller.train_mode(False)
            save(distiller)
            distiller.train_mode(True)
    finally:
        distiller.train_mode(False)


def _checked_weights(settings: TuneSettings):
    """The weights to tune, once the settings and the file are known to fit (else one ValueError line)."""
    if settings.loss not in LOSSES:
        raise ValueError(f"unknown distillation loss {settings.loss!r}: one of {', '.join(LOSSES)}")
    if settings.readouts and max(settings.readouts) > settings.timesteps:
        raise ValueError(f"readout steps {list(settings.readouts)} go beyond --timesteps {settings.timesteps}: read "
                         "out after steps 1…T only")
    weights = read_weights(settings.weights)
    if weights.is_snn:
        raise ValueError(f"{settings.weights} is a converted SNN: tune the detector checkpoint it came from (the "
                         "ANN teaches the SNN)")
    if not weights.levels:
        raise ValueError(f"{settings.weights} is not a QCFS checkpoint: tune converts with QCFS thresholds; train "
                         "one with 'spikeyolo train --levels 4' (or --from your ReLU model)")
    return weights


def tune(settings: TuneSettings, out: str | Path, device: str | torch.device = "cpu", ranks: Ranks = Ranks()):
    """Tune ``settings.weights`` (a QCFS detector checkpoint) for its SNN at ``settings.timesteps``; write the SNN
    artifact to ``out``. Returns (the tuning record stored in its metadata, the tuned SpikingDetector).

    ``ranks``: one of several processes (``spikeyolo.tune.distributed``): each global batch of ``settings.batch``
    images is split between them; rank 0 calibrates, saves progress and writes the artifact."""
    out, device = Path(out), torch_device(device)
    weights = _checked_weights(settings)
    if settings.batch < ranks.world:
        raise ValueError(f"--batch {settings.batch} is the global batch, split between {ranks.world} processes: give "
                         f"each at least one image (--batch ≥ {ranks.world})")
    torch.manual_seed(settings.seed)
    loaded = load_model(weights, device, mode="qcfs", burst=settings.burst,
                        snm=settings.snm, imgsz=settings.imgsz)
    snn, ann, imgsz = loaded.snn, loaded.ann.float().eval(), loaded.settings["imgsz"]
    snn.use_channels_last(False)
    if settings.thresholds and settings.epochs > 0:
        per_channel_thresholds(snn)  # before a resume file (saved per channel) is loaded into it
    files = split_images(prepare_dataset(settings.data, train_split=settings.train_split), "train")[:settings.images]
    resume = resume_path(out)
    found = _load_progress(resume, settings)
    progress, optim_state = (found[0], _restore(snn, found[1], resume)) if found else (Progress(), {})
    if found:
        print(f"tune: continuing {resume} ({progress.calibrated_layers} layers calibrated, "
              f"{progress.epochs_done} of {settings.epochs} epochs done)")
    started = time.time() - progress.seconds

    def save(distiller):
        progress.seconds = time.time() - started
        if ranks.first:
            _save_progress(resume, snn, distiller, settings, progress)

    if settings.calibrate and not progress.calibration_done:
        if ranks.first:  # once, then every rank takes rank 0's network
            _calibrate(snn, ann, settings, files, imgsz, progress, save)
        ranks.broadcast(snn.net.state_dict().values())
        progress.calibration_done = True
    if settings.epochs > progress.epochs_done:
        _finetune(snn, ann, settings, files, imgsz, progress, optim_state, save, ranks)
    record = {**asdict(settings), "method": describe_method(settings), "train_images": len(files),
              "losses": progress.losses, "seconds": round(time.time() - started, 1)}
    snn.use_channels_last(True)
    source = {"weights": str(settings.weights), "imgsz": imgsz, "levels": weights.levels,
              "metrics": weights.meta.get("metrics"), **({"events": weights.meta["events"]} if
                                                          weights.meta.get("events") else {})}
    if ranks.first:
        save_snn(snn, out, source, tuning={**record, "processes": ranks.world} if ranks.world > 1 else record)
        resume.unlink(missing_ok=True)
    return record, snn
