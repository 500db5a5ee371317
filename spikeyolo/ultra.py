"""The one adapter to ultralytics internals (pinned to the 8.4 series).

Every other spikeyolo module reaches ultralytics through the names defined here. Importing this
module makes ultralytics offline: a local TrueType font, settings sync off, no auto-install,
and torch using every available core.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import spikeyolo  # noqa: F401  (sets the offline environment before ultralytics loads)

import numpy as np
import torch
from torch import nn

import ultralytics
from ultralytics.cfg import get_cfg, smart_value
from ultralytics.data.augment import LetterBox
from ultralytics.data.utils import check_det_dataset
from ultralytics.engine import trainer as _trainer
from ultralytics.engine.results import Results
from ultralytics.models.yolo.detect import DetectionPredictor, DetectionTrainer, DetectionValidator
from ultralytics.nn import tasks as _tasks
from ultralytics.nn.modules import C3, DFL, SPPF, Bottleneck, C2f, Concat, Conv, Detect
from ultralytics.nn.tasks import DetectionModel, load_checkpoint
from ultralytics.utils import DEFAULT_CFG, SETTINGS, USER_CONFIG_DIR
from ultralytics.utils import nms as _nms
from ultralytics.utils import ops as _ops
from ultralytics.utils import torch_utils as _torch_utils
from ultralytics.utils.loss import v8DetectionLoss

from spikeyolo.device import torch_device
from spikeyolo.anchor_head import AnchorDetect, use_anchor_head

SUPPORTED_SERIES = "8.4."
if not ultralytics.__version__.startswith(SUPPORTED_SERIES):
    raise ImportError(f"spikeyolo needs ultralytics {SUPPORTED_SERIES}x, found {ultralytics.__version__}: "
                      f"pip install 'ultralytics>=8.4,<8.5'")

__all__ = ["CONVERTIBLE", "Conv", "DFL", "Detect", "DetectionModel", "DetectionPredictor", "DetectionTrainer",
           "DetectionValidator", "DEFAULT_CFG", "boxes_to_original", "build_detection_model", "conv_blocks",
           "cpu_threads", "decode_head_outputs", "detection_validators", "draw_detections", "first_conv_block",
           "fold_batchnorm", "get_cfg", "head_output_convs", "LabelsLoss", "letterbox_batch", "letterbox_boxes",
           "load_checkpoint", "max_pool_uses", "non_max_suppression", "scale_to_frame", "smart_value", "yaml_model"]


def cpu_threads() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _local_font() -> None:
    """Give ultralytics its Arial.ttf from matplotlib's bundled DejaVuSans, so it never downloads one."""
    target = Path(USER_CONFIG_DIR) / "Arial.ttf"
    if target.exists():
        return
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def _offline_check_amp(model: nn.Module) -> bool:
    """ultralytics' AMP check downloads yolo26n.pt; offline we trust AMP on CUDA (use --no-amp to opt out)."""
    return next(model.parameters()).device.type == "cuda"


def _configure() -> None:
    if SETTINGS.get("sync", False):
        SETTINGS.update({"sync": False})
    _local_font()
    threads = cpu_threads()
    _torch_utils.NUM_THREADS = threads  # ultralytics' select_device resets torch to this on CPU
    torch.set_num_threads(threads)
    _trainer.check_amp = _offline_check_amp


_configure()


def yaml_model(cfg: str | Path | dict) -> dict:
    """Read a model yaml (path or dict) into a dict, as ultralytics does, but from exactly this file (ultralytics
    renames some, e.g. yolov5n-relu.yaml → yolov5-rel.yaml), with the scale its name gives (yolov8n → n)."""
    if isinstance(cfg, dict):
        return copy.deepcopy(cfg)
    import yaml

    config = yaml.safe_load(Path(cfg).read_text())
    config.setdefault("scale", _tasks.guess_model_scale(Path(cfg)))
    config["yaml_file"] = str(cfg)
    return config


def conv_blocks(model: nn.Module) -> list[tuple[str, Conv]]:
    """Every ultralytics Conv block (conv + bn + act), in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Conv)]


def build_detection_model(cfg: str | Path | dict, nc: int | None = None, verbose: bool = False) -> DetectionModel:
    """Build a DetectionModel whose Conv blocks each own a distinct activation module."""
    config = yaml_model(cfg)
    model = DetectionModel(config, nc=nc, verbose=verbose)
    if config.get("anchors"):  # YOLOv5's anchor-based head in place of the anchor-free one
        use_anchor_head(model, config["anchors"])
    seen: set[int] = set()
    for _, block in conv_blocks(model):
        if id(block.act) in seen or block.act is Conv.default_act:
            block.act = copy.deepcopy(block.act)
        seen.add(id(block.act))
    return model


# Module types a detector may contain for spiking conversion (containers and the linear pieces).
CONVERTIBLE = (DetectionModel, nn.Sequential, nn.ModuleList, Conv, nn.Conv2d, C2f, C3, Bottleneck, SPPF,
               nn.MaxPool2d, nn.Upsample, Concat, Detect, DFL, nn.Identity, nn.BatchNorm2d, AnchorDetect)


def fold_batchnorm(model: DetectionModel) -> DetectionModel:
    """Fold every Conv block's batch-norm into its convolution (ultralytics' fuse), in place."""
    return model.fuse(verbose=False)


def head_output_convs(model: DetectionModel) -> list[tuple[nn.Sequential, int]]:
    """(branch, index) of the Detect head's last convolutions: they accumulate instead of spiking."""
    head = model.model[-1]
    if isinstance(head, AnchorDetect):  # YOLOv5's head: one 1×1 convolution per level
        return [(head.m, level) for level in range(len(head.m))]
    if not isinstance(head, Detect) or getattr(head, "one2one_cv2", None) is not None:
        raise ValueError("spiking conversion supports the anchor-free ultralytics Detect head without one2one branches")
    return [(branch, len(branch) - 1) for branch in (*head.cv2, *head.cv3)]


def max_pool_uses(model: nn.Module) -> dict[str, int]:
    """Every nn.MaxPool2d by name, with how many times one forward applies it (SPPF chains its pool n times)."""
    uses = {name: 1 for name, m in model.named_modules() if isinstance(m, nn.MaxPool2d)}
    for name, m in model.named_modules():
        if isinstance(m, SPPF):
            uses[f"{name}.m"] = getattr(m, "n", 3)
    return uses


def keep_head_anchors(model: DetectionModel, batch: int) -> None:
    """The Detect head rebuilds its anchors whenever its input's shape changes, batch included, though they depend
    on the feature maps' sizes only: once built, its cached shape is given ``batch`` so that a new batch (another
    T·N) does not rebuild them inside a compiled graph (their construction reads tensor values)."""
    head = model.model[-1]
    if isinstance(head, Detect) and not head.dynamic and isinstance(head.shape, torch.Size) and head.shape[0] != batch:
        head.shape = torch.Size((batch, *head.shape[1:]))


def first_conv_block(model: DetectionModel) -> Conv:
    first = model.model[0]
    if not isinstance(first, Conv):
        raise ValueError(f"the first layer must be a Conv block to take the image as input current, got {type(first).__name__}")
    return first



def letterbox_boxes(boxes: np.ndarray, shape_hw: tuple[int, int], imgsz: int) -> np.ndarray:
    """Normalized xywh boxes [K, 4] of an image of ``shape_hw`` → normalized xywh on its letterboxed imgsz square,
    moved as LetterBox moves labels (scaled by its ratio, shifted by its padding)."""
    params = LetterBox((imgsz, imgsz), auto=False, stride=32).get_params({"img": np.empty((*shape_hw, 0))})
    ratio_w, ratio_h = params["ratio"]
    (height, width), (left, top) = shape_hw, (params["left"], params["top"])
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    out[:, 0] = out[:, 0] * width * ratio_w + left
    out[:, 1] = out[:, 1] * height * ratio_h + top
    out[:, 2] *= width * ratio_w
    out[:, 3] *= height * ratio_h
    return out / imgsz


class LabelsLoss:
    """ultralytics' detection loss (task-aligned assignment; box IoU, class BCE and DFL terms with the trainer's
    default gains) of a Detect head's raw outputs against labels, per image (ultralytics' training loss ÷ batch).

    ``model``: a DetectionModel with the head's configuration (strides, classes, bins); ``targets``: the trainer's
    label format, {'batch_idx': [N], 'cls': [N], 'bboxes': [N, 4] normalized xywh on the square input}.
    """

    def __init__(self, model: DetectionModel):
        gains = SimpleNamespace(**{key: getattr(DEFAULT_CFG, key) for key in ("box", "cls", "dfl")})
        self.strides = [int(s) for s in model.model[-1].stride]
        self.criterion = v8DetectionLoss(SimpleNamespace(args=gains, model=model.model, parameters=model.parameters))

    def __call__(self, raw: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], imgsz: int) -> torch.Tensor:
        batch, _, anchors = raw["scores"].shape
        grids = [(imgsz // s) ** 2 for s in self.strides]
        if sum(grids) != anchors:
            raise ValueError(f"the head's {anchors} anchors do not fit a {imgsz} px input at strides {self.strides}")
        feats = [raw["scores"].new_empty(batch, 0, imgsz // s, imgsz // s) for s in self.strides]  # the grid only
        _, loss, _ = self.criterion.get_assigned_targets_and_loss({**raw, "feats": feats}, targets)
        return loss.sum()


def letterbox_batch(images_bgr: list, imgsz: int) -> torch.Tensor:
    """BGR uint8 images → an RGB float batch [N, 3, imgsz, imgsz] in [0, 1], letterboxed as ultralytics does."""
    box = LetterBox((imgsz, imgsz), auto=False, stride=32)
    batch = np.stack([box(image=im)[..., ::-1].transpose(2, 0, 1) for im in images_bgr])
    return torch.from_numpy(np.ascontiguousarray(batch)).float() / 255.0




NO_SAVE_DIR = Path(tempfile.gettempdir())  # validators with plots off save nothing; without a save_dir each would
#                                           make an empty runs/detect/val-N in the folder spikeyolo was imported in


@contextlib.contextmanager
def _quiet():
    """ultralytics' INFO lines off for the block (its warnings still show)."""
    logger = logging.getLogger("ultralytics")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def detection_validators(data: str | Path, names: dict, keys: list, imgsz: int = 640, batch: int = 16,
                         device: str = "cpu", split: str = "val", **overrides):
    """One shared val dataloader and one ultralytics DetectionValidator per key (e.g. 'ann', 1, 2, 4 ...).

    Each validator accumulates its own statistics: feed it with ``validator.update_metrics(
    validator.postprocess(predictions), batch)`` and read ``validator.get_stats()``.
    """
    args = get_cfg(overrides={"task": "detect", "mode": "val", "data": str(data), "imgsz": imgsz, "batch": batch,
                              "device": device, "split": split, "plots": False, "verbose": False, "rect": False,
                              **overrides})
    with _quiet():  # "Fast image access ✅", "Scanning … val.cache": ultralytics' chatter inside val's table
        dataset = check_det_dataset(str(data))
        if split not in dataset:
            raise ValueError(f"dataset {data} has no '{split}' split")
        device = torch_device(device)
        base = DetectionValidator(save_dir=NO_SAVE_DIR, args=copy.copy(args))
        base.data, base.stride, base.device = dataset, 32, device
        loader = base.get_dataloader(dataset[split], batch)
    validators = {}
    for key in keys:
        validator = DetectionValidator(save_dir=NO_SAVE_DIR, args=copy.copy(args))
        validator.data, validator.dataloader, validator.training = dataset, loader, False
        validator.device = device
        validator.init_metrics(SimpleNamespace(names=names))
        validators[key] = validator
    return loader, validators



def boxes_to_original(boxes: torch.Tensor, batch: dict, index: int) -> torch.Tensor:
    """Boxes from the letterboxed model input back to the original image's pixels."""
    return _ops.scale_boxes(batch["img"].shape[2:], boxes.clone(), batch["ori_shape"][index],
                            ratio_pad=batch["ratio_pad"][index])



def non_max_suppression(predictions: torch.Tensor, conf: float, iou: float, max_det: int = 300,
                        classes: list[int] | None = None) -> list[torch.Tensor]:
    """ultralytics NMS on decoded head output [N, 4 + nc, anchors] → per image [K, 6] (xyxy, score, class);
    ``classes``: only these class indices kept."""
    return _nms.non_max_suppression(predictions, conf, iou, classes=classes, max_det=max_det)


def scale_to_frame(boxes: torch.Tensor, input_hw, frame_shape) -> torch.Tensor:
    """Boxes on a letterboxed input of size ``input_hw`` → pixels of the original frame."""
    return _ops.scale_boxes(tuple(input_hw), boxes.clone(), tuple(frame_shape[:2]))


def draw_detections(frame, rows: torch.Tensor, names: dict, path: str = "") -> np.ndarray:
    """The frame with boxes and labels drawn, ultralytics style (rows: [K, 6] xyxy, score, class)."""
    return Results(frame, path=path, names=names, boxes=rows).plot()


def raw_head_outputs(output) -> dict[str, torch.Tensor]:
    """The Detect head's undecoded outputs from an eval-mode forward: {'boxes': [B, 4·reg_max, A] (box distribution
    logits), 'scores': [B, nc, A] (class logits)}; ultralytics 8.4 returns them beside the decoded predictions.
    YOLOv5's anchor head (``spikeyolo.anchor_head``): {'anchors': [B, A, 5 + nc]} (every anchor's logits, level by
    level)."""
    raw = output[1] if isinstance(output, (tuple, list)) else None
    if isinstance(raw, list) and all(isinstance(level, torch.Tensor) and level.dim() == 5 for level in raw):
        return {"anchors": torch.cat([level.flatten(1, 3) for level in raw], 1)}
    if not isinstance(raw, dict) or "boxes" not in raw or "scores" not in raw:
        raise ValueError("the detector did not return the Detect head's raw outputs (ultralytics 8.4.x expected)")
    return {"boxes": raw["boxes"], "scores": raw["scores"]}


def decode_head_outputs(detect: nn.Module, raw: dict[str, torch.Tensor]) -> torch.Tensor:
    """Raw head outputs ({'boxes', 'scores', 'feats'}) → [B, 4 + nc, A] (xywh pixels, class probabilities), as the
    anchor-free Detect head ``detect`` decodes its own in eval mode."""
    return detect._inference(raw)


def box_bins(model: nn.Module) -> int:
    """reg_max of the Detect head: bins of each box side's distribution (None: YOLOv5's anchor head has none)."""
    bins = getattr(model.model[-1], "reg_max", None)
    return None if bins is None else int(bins)


def learnable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every floating-point parameter except the Detect head's DFL convolution (fixed bin centres, never trained)."""
    fixed = {id(p) for p in model.model[-1].dfl.parameters()} if hasattr(model.model[-1], "dfl") else set()
    return [p for p in model.parameters() if p.is_floating_point() and id(p) not in fixed]
