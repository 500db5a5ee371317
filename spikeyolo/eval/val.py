"""`spikeyolo val` as a Python API: ANN and SNN accuracy at every T, and the SNN cost, in one run."""
from __future__ import annotations

import logging
from pathlib import Path

from spikeyolo.checkpoint import load_detector
from spikeyolo.convert import convert
from spikeyolo.convert.artifact import SNN_FORMAT, check_asked, load_snn, weights_metadata
from spikeyolo.data import DatasetError, prepare_dataset
from spikeyolo.data.images import dataset_names, image_batches, split_images
from spikeyolo.device import torch_device
from spikeyolo.engine import default_backend
from spikeyolo.eval.anytime import evaluate_anytime
from spikeyolo.eval.cost import CostMeter
from spikeyolo.eval.evaluators import COCOEvaluator, dataset_evaluator
from spikeyolo.eval.report import build_report

DEFAULT_TIMESTEPS = (1, 2, 4, 8, 16, 32, 64)
LOGGER = logging.getLogger("spikeyolo.val")


def check_classes(model_names: list[str], data_yaml: Path, data: str | Path, weights: str | Path) -> None:
    """A DatasetError unless the model and the dataset have the same number of classes; a warning if the
    names differ (the class indices would be compared as they are)."""
    names = dataset_names(data_yaml)
    model = [str(name) for name in model_names]
    if len(names) != len(model):
        shown = ", ".join(model[:5]) + (", …" if len(model) > 5 else "")
        raise DatasetError(f"{weights} detects {len(model)} classes ({shown}) "
                           f"but {data} has {len(names)}: evaluate on a dataset with the model's classes")
    if [n.lower() for n in names] != [n.lower() for n in model]:
        LOGGER.warning(f"class names differ between {weights} ({model}) and {data} ({names}): "
                       f"classes are matched by index")


def load_pair(weights: str | Path, data_yaml: Path, mode: str | None, percentile: float, calib_images: int,
              imgsz: int | None, device: str, burst: int | None = None, snm: bool = False):
    """(ANN or None, SNN, metadata) from a detector checkpoint (converted here, ``burst`` default 1) or an SNN
    artifact (converted before: ``mode``, ``burst`` and ``snm`` must be unset or what it was converted with)."""
    weights = Path(weights)
    if weights_metadata(weights)["format"] == SNN_FORMAT:
        snn = load_snn(weights, device)
        check_asked(snn, weights, burst, snm, mode)
        source = Path(snn.meta["source"].get("weights") or "")
        ann = load_detector(source, device)[0] if source.is_file() else None
        return ann, snn, {"mode": snn.meta["mode"], "burst": snn.meta["burst"], "snm": snn.meta["snm"],
                          "imgsz": imgsz or snn.meta["source"].get("imgsz", 640)}
    ann, meta = load_detector(weights, device)
    imgsz = imgsz or meta.get("imgsz", 640)
    mode = mode or ("qcfs" if meta["quantization"].get("levels") else "channel")
    calibration = None
    if mode != "qcfs":
        files = split_images(data_yaml, "train")[:calib_images]
        calibration = [b.to(device) for b in image_batches(files, imgsz)]
    burst = 1 if burst is None else burst
    snn = convert(ann, mode, calibration, percentile, burst=burst, snm=snm)
    return ann, snn, {"mode": mode, "burst": burst, "snm": snm, "imgsz": imgsz,
                      "levels": meta["quantization"].get("levels")}


def validate(weights: str | Path, data: str | Path, timesteps=DEFAULT_TIMESTEPS, split: str = "val",
             imgsz: int | None = None, batch: int = 16, device: str = "auto", mode: str | None = None,
             percentile: float = 99.9, calib_images: int = 64, ann: bool = True, cost: bool = True,
             burst: int | None = None, chunk: int | None = None, snm: bool = False, precision: str = "fp32") -> dict:
    """Evaluate ANN and SNN (simulated once to max T) and return the report dict."""
    device = torch_device(device)  # 'auto', '0', … as torch reads them
    timesteps = sorted(set(int(t) for t in timesteps))
    if not timesteps or timesteps[0] < 1:
        raise ValueError(f"timesteps must be positive integers, got {timesteps}")
    data_yaml = prepare_dataset(data)
    check_classes(weights_metadata(weights)["names"], data_yaml, data, weights)  # before any conversion
    ann_model, snn, meta = load_pair(weights, data_yaml, mode, percentile, calib_images, imgsz, device, burst, snm)
    snn.set_backend(default_backend(device))  # the fused kernel on CUDA
    snn.set_precision(precision)  # the ANN row stays the float32 reference
    meta["precision"] = precision
    meter = CostMeter(snn) if cost else None
    evaluator = dataset_evaluator(data_yaml, split)
    try:
        accuracy = evaluate_anytime(ann_model if ann else None, snn, data_yaml, timesteps, meta["imgsz"], batch,
                                    device, split, on_batch=meter.after_batch if meter else None, evaluator=evaluator,
                                    chunk=chunk)
    finally:
        if meter:
            meter.close()
    report_cost = meter.report(timesteps) if meter else None
    report = build_report(accuracy, report_cost, str(data), str(weights), {**meta, "split": split})
    if isinstance(evaluator, COCOEvaluator):
        report["coco_results"] = {str(key): evaluator.results(found) for key, found in accuracy["detections"].items()}
    return report
