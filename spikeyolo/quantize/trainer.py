"""Training: the ultralytics detection trainer, with QCFS activations swapped into every Conv block."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from spikeyolo.atomic import write_text
from spikeyolo.checkpoint import read_metadata
from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.data import prepare_dataset
from spikeyolo.device import ultralytics_device
from spikeyolo.quantize.qcfs import DEFAULT_THRESHOLD, QCFS
from spikeyolo.quantize.swap import calibrate_thresholds, quantize_model
from spikeyolo.quantize.signature import check_signed, sign
from spikeyolo.quantize.teacher import DistilledLoss, check_teacher
from spikeyolo.ultra import (DEFAULT_CFG, DetectionTrainer, box_bins, build_detection_model, conv_blocks,
                             load_checkpoint, smart_value)


LOGGER = logging.getLogger("spikeyolo.train")
THRESHOLD_LR_SCALE = 20.0  # λ's learning rate as a multiple of the weights'


def _announce_qcfs(model, levels: int, threshold: float, pretrained: bool) -> None:
    """The log says what QCFS training does; a pretrained model whose activations are not ReLU gets a warning
    (its SiLU → QCFS swap starts from a much worse network: on oi5 it read mAP50 0 after the swap)."""
    kinds = sorted({type(block.act).__name__ for _, block in conv_blocks(model)})
    LOGGER.info(f"QCFS training: every Conv block's activation ({', '.join(kinds)}) becomes a QCFS quantizer with "
                f"L = {levels} levels and a trained threshold λ (starts at {threshold:g}); the SNN converted from it "
                "equals it with bursts of up to L spikes a step")
    smooth = [kind for kind in kinds if kind not in ("ReLU", "ReLU6", "LeakyReLU", "QCFS", "Identity")]
    if pretrained and smooth:
        LOGGER.warning(f"the pretrained model's {', '.join(smooth)} activations are swapped for QCFS (clip-floor of "
                       "a ReLU): its accuracy drops sharply at first and may not recover in a short fine-tune; "
                       "import it with --activation 'nn.ReLU()', fine-tune that with --levels 0, then train QCFS "
                       "from the ReLU model")


@dataclass(frozen=True)
class QCFSSettings:
    """What spikeyolo's trainer adds to ultralytics' settings: QCFS levels (None: a plain ANN), λ's start and
    learning-rate scale, the model imported with --from, and the --teacher."""
    levels: int | None = None
    threshold: float = DEFAULT_THRESHOLD
    threshold_lr_scale: float = THRESHOLD_LR_SCALE
    pretrained: object = None  # an ImportedModel (--from): its carried tensors go into the built model
    teacher: object = None  # a TeacherSettings (--teacher): distillation on top of the labels' loss


class QCFSTrainer(DetectionTrainer):
    """DetectionTrainer whose model has one QCFS module per layer, as its class's ``qcfs`` settings say.

    ``QCFSTrainer.configured(levels=4, ...)`` is a subclass carrying those settings. The class carries them, not
    the instance, because ultralytics' multi-GPU training pickles the trainer's *class* (cloudpickle: a class made
    at run time travels by value) and rebuilds it on every rank from ``cfg``, ``overrides`` and ``_callbacks``
    alone: every rank then builds the same QCFS model, teacher and optimizer groups."""
    qcfs = QCFSSettings()

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks=None):
        settings = self.qcfs
        self.levels, self.init_threshold = settings.levels, settings.threshold
        self.teacher, self.pretrained = settings.teacher, settings.pretrained
        self.threshold_lr_scale = settings.threshold_lr_scale
        self.calibrate_lambda = False
        super().__init__(cfg, overrides=overrides, _callbacks=_callbacks)
        for callback in (calibrate_lambda_once, install_teacher):  # a rank's _callbacks already hold them
            if callback not in self.callbacks["on_pretrain_routine_end"]:
                self.add_callback("on_pretrain_routine_end", callback)

    @classmethod
    def configured(cls, **settings) -> type[QCFSTrainer]:
        """A QCFSTrainer subclass whose instances (on every DDP rank too) use these QCFSSettings."""
        return type(cls.__name__, (cls,), {"qcfs": QCFSSettings(**settings)})

    def save_model(self):
        """ultralytics' checkpoints, each signed (``signature``): only these can be resumed."""
        super().save_model()
        sign_checkpoints(Path(self.wdir))

    def get_model(self, cfg=None, weights=None, verbose=True):
        model = build_detection_model(cfg, nc=self.data["nc"], verbose=verbose)
        model = self.set_model_names_for_load(model)
        levels = self.levels or _levels_of(weights) or (self.pretrained.qcfs_levels if self.pretrained else None)
        if levels:
            _announce_qcfs(model, levels, self.init_threshold, self.pretrained is not None)
            quantize_model(model, levels, self.init_threshold)
        if weights:  # ultralytics' own (resume)
            model.load(weights)
            self.calibrate_lambda = bool(levels) and _levels_of(weights) is None
        elif self.pretrained is not None:  # --from, read without unpickling: every tensor that fits
            target = model.state_dict()
            fits = {k: v for k, v in self.pretrained.carried_state().items()
                    if k in target and target[k].shape == v.shape}
            model.load_state_dict(fits, strict=False)
            LOGGER.info(f"--from {self.pretrained.path}: {len(fits)} of {len(target)} tensors carried, the rest "
                        "initialized")
            # a pretrained non-QCFS model: start λ from its activations, not a constant
            self.calibrate_lambda = bool(levels) and not self.pretrained.qcfs_levels
        return model

    def build_optimizer(self, model, name="auto", lr=0.001, momentum=0.9, decay=1e-5, iterations=1e5):
        """ultralytics' optimizer, with the QCFS thresholds λ in their own group: no weight decay, a larger lr.

        ultralytics would put λ with the conv weights (decayed towards 0, lr ~1e-3), where it barely moves.
        """
        optimizer = super().build_optimizer(model, name, lr, momentum, decay, iterations)
        thresholds = {id(m.threshold) for m in model.modules() if isinstance(m, QCFS)}
        if not thresholds:
            return optimizer
        found = []
        for group in optimizer.param_groups:
            found += [p for p in group["params"] if id(p) in thresholds]
            group["params"] = [p for p in group["params"] if id(p) not in thresholds]
        base = optimizer.param_groups[0]
        optimizer.add_param_group({"params": found, "lr": base["lr"] * self.threshold_lr_scale,
                                   "weight_decay": 0.0, "param_group": "threshold"})
        return optimizer


def calibrate_lambda_once(trainer) -> None:
    """on_pretrain_routine_end: start λ of a model fine-tuned from a non-QCFS one (--from) from its activations
    on one training batch, once. A public callback, after the loaders and the EMA exist: ultralytics rebuilds
    its train pipeline on an OOM retry, which must not overwrite learned λ (Adam keeps its state)."""
    if not trainer.calibrate_lambda or trainer.args.resume:
        return
    trainer.calibrate_lambda = False
    batch = next(iter(trainer.train_loader))
    calibrate_thresholds(trainer.model, batch["img"].to(trainer.device).float() / 255)
    share_from_first_rank([m.threshold.data for m in trainer.model.modules() if isinstance(m, QCFS)])
    trainer.model.train()
    if getattr(trainer, "ema", None) is not None:  # the EMA copy was made before: give it the same λ
        ema_lambdas = [m.threshold for m in trainer.ema.ema.modules() if isinstance(m, QCFS)]
        for source, target in zip([m.threshold for m in trainer.model.modules() if isinstance(m, QCFS)], ema_lambdas):
            target.data.copy_(source.data)


@dataclass
class TeacherSettings:
    """--teacher: the detector to distil from (spikeyolo .safetensors, or a YOLOv5 v6.x .pt whose own anchor head
    teaches, read without unpickling), and the terms' weights."""
    path: str
    gain: float = 1.0
    feature_weight: float = 0.0
    _yolov5: object = field(default=None, init=False, repr=False, compare=False)  # the .pt as read once

    def __post_init__(self):  # a wrong or damaged file: one line before any work, not after the dataset is read
        if Path(self.path).suffix == ".pt":
            from spikeyolo.quantize.anchor_teacher import read_yolov5

            self._yolov5 = read_yolov5(self.path)
        else:
            read_metadata(self.path)

    def load(self, names: list[str], bins: int) -> torch.nn.Module:
        if Path(self.path).suffix == ".pt":
            from spikeyolo.quantize.anchor_teacher import AnchorHeadTeacher

            return AnchorHeadTeacher(self.path, names, bins, checkpoint=self._yolov5)
        from spikeyolo.quantize.checkpoint import load_detector

        return load_detector(self.path)[0]

    def describe(self) -> dict:
        return {"path": Path(self.path).name, "gain": self.gain, "feature_weight": self.feature_weight}


def share_from_first_rank(tensors: list[torch.Tensor]) -> None:
    """Under torch.distributed, every rank's ``tensors`` become rank 0's (in place); alone, nothing happens. λ is
    calibrated on each rank's own first batch after DDP has synchronized the model once: without this the ranks
    would train different thresholds (DDP averages gradients, it never re-synchronizes parameters)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    for tensor in tensors:
        torch.distributed.broadcast(tensor, src=0)


def install_teacher(trainer) -> None:
    """on_pretrain_routine_end: the model's (and its EMA copy's, for the validation loss) criterion becomes the
    labels' loss plus distillation from the teacher, once the model knows its training settings."""
    settings = trainer.teacher
    if settings is None:
        return
    names = [trainer.data["names"][i] for i in sorted(trainer.data["names"])]
    teacher = settings.load(names, box_bins(trainer.model))
    check_teacher(teacher, trainer.model, names, settings.path, settings.feature_weight > 0)
    teacher = teacher.to(trainer.device)
    for model in (trainer.model, getattr(getattr(trainer, "ema", None), "ema", None)):
        if model is not None:
            model.criterion = DistilledLoss(model.init_criterion(), teacher, settings.gain, settings.feature_weight)
    LOGGER.info(f"--teacher {settings.path}: distilled with gain {settings.gain}"
                + (f", neck features weight {settings.feature_weight}" if settings.feature_weight else ""))


def pretrained_model(path: str | Path):
    """(the model imported without unpickling, a model yaml to train it from): the yaml is the one the import
    rebuilt (checked like weights metadata; YOLOv5 mapped to v5u), written to the cache."""
    from spikeyolo.data.prepare import default_cache_dir
    from spikeyolo.importing import import_weights

    imported = import_weights(path)
    config = {k: v for k, v in imported.model.yaml.items() if k != "yaml_file"}
    text = yaml.safe_dump(config, sort_keys=False)
    folder = default_cache_dir().parent / "models"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{Path(path).stem}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.yaml"
    write_text(target, text)
    return imported, target


def _levels_of(model) -> int | None:
    """The QCFS levels a model already has (a resumed or QCFS-pretrained one), else None."""
    if not isinstance(model, torch.nn.Module):
        return None
    found = {m.levels for m in model.modules() if isinstance(m, QCFS)}
    return found.pop() if found else None


def event_settings(data: str | Path) -> dict | None:
    """How an event dataset (built by spikeyolo.events.saccades) made its frames; None for ordinary images."""
    marker = Path(data) / "events.json"
    if not marker.is_file():
        return None
    config = json.loads(marker.read_text())["config"]
    return {"sensor": list(config["sensor"]), "window_us": config["saccade_us"], "clip": config["clip"],
            "threshold": config["threshold"], "threshold_sigma": config["threshold_sigma"],
            "refractory_us": config["refractory_us"]}


# Settings spikeyolo's own train options own (``--epochs`` ...); every other ultralytics setting passes through.
OWN_SETTINGS = {"data", "model", "epochs", "imgsz", "device", "batch", "resume", "project", "name", "seed", "mode",
                "task", "exist_ok"}


def train_settings(items: list[str]) -> dict:
    """``["warmup_epochs=0", "lr0=2e-3"]`` → ultralytics train overrides, checked against its settings."""
    known = set(vars(DEFAULT_CFG))
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"setting {item!r} is not KEY=VALUE: write e.g. warmup_epochs=0")
        if key in OWN_SETTINGS:
            raise ValueError(f"setting {key} has its own option: use --{key.replace('_', '-')}")
        if key not in known:
            raise ValueError(f"{key} is not an ultralytics train setting (see 'yolo cfg'): check the spelling")
        settings[key] = smart_value(value)  # as `yolo train key=value` reads it
    return settings


@dataclass
class TrainResult:
    """Where training left its checkpoint, and the final validation metrics."""
    checkpoint: Path
    run_dir: Path
    map50: float
    map50_95: float


def sign_checkpoints(folder: Path) -> None:
    for checkpoint in folder.glob("*.pt"):
        sign(checkpoint)


def train(data: str | Path, model: str | Path, levels: int | None = 4, epochs: int = 100, imgsz: int = 640,
          device: str = "auto", batch: int = 16, resume: str | Path | None = None,
          threshold: float = DEFAULT_THRESHOLD, train_split: str | None = None, val_split: str | None = None,
          teacher: TeacherSettings | None = None, **overrides) -> TrainResult:
    """Train a detector (QCFS if ``levels``) and write ``best.safetensors`` beside ultralytics' own files.

    ``model`` is a model yaml, or a user's ultralytics ``.pt`` (``--from``) to fine-tune with QCFS; ``train_split``
    and ``val_split`` choose the dataset's splits in its own names (default: its layout's standard); ``teacher``
    adds distillation from another detector of the same classes (``spikeyolo.quantize.teacher``).
    """
    if resume:
        if resume is True or not Path(resume).is_file():
            raise ValueError(f"resume needs the path of an existing last.pt, got {resume!r} (it is unpickled: only "
                             "your own files; spikeyolo never searches for one)")
        check_signed(resume)  # before anything reads or unpickles it
    events = event_settings(data)
    colour = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0} if events else {}  # event counts are not colours
    pretrained, provenance = None, {}
    if Path(model).suffix in (".pt", ".safetensors"):  # --from: never unpickled; trained from its checked yaml
        provenance = {"fine_tuned_from": Path(model).name}
        pretrained, model = pretrained_model(model)
    args = {"data": str(prepare_dataset(data, train_split=train_split, val_split=val_split)), "model": str(model), "epochs": epochs, "imgsz": imgsz,
            "device": ultralytics_device(device), "batch": batch, **colour, **overrides}
    if resume:
        args.update(resume=str(resume))
    try:
        trainer = QCFSTrainer.configured(levels=levels, threshold=threshold, pretrained=pretrained,
                                         teacher=teacher)(overrides=args)
        trainer.train()
    except AssertionError as err:  # ultralytics: a resumed run that already reached its epochs
        if not resume:
            raise
        reason = str(err).strip().splitlines()[0].rstrip(". ") if str(err).strip() else "ultralytics refused it"
        raise ValueError(f"--resume {resume}: {reason}: start a new run (--from its best.safetensors)") from None
    sign_checkpoints(Path(trainer.wdir))  # the final evaluation strips the optimizer from them: signed again
    best = trainer.best if trainer.best.exists() else trainer.last
    net, _ = load_checkpoint(best)
    results = trainer.metrics or {}
    map50 = float(results.get("metrics/mAP50(B)", 0.0))
    map50_95 = float(results.get("metrics/mAP50-95(B)", 0.0))
    extra = {"events": events, **provenance} if events else provenance
    if teacher is not None:
        extra["teacher"] = teacher.describe()
    out = save_detector(net, Path(trainer.wdir) / "best.safetensors", imgsz=imgsz, data=str(data),
                        epochs=epochs, metrics={"map50": map50, "map50_95": map50_95}, **extra)
    return TrainResult(out, Path(trainer.save_dir), map50, map50_95)
