"""The spikeyolo command line: a thin front end over the Python API."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from spikeyolo import limits
from spikeyolo.quantize.qcfs import DEFAULT_THRESHOLD
from spikeyolo.resources import resource

CONFIGS = resource("configs/models")
SNM_HELP = ("signed neurons with memory (Wang et al. 2022): negative spikes take back earlier ones, cutting the "
            "error at few steps; leaky layers track the signed quantizer (they always do in qcfs mode)")


class UsageError(ValueError):
    """Bad command-line input; printed as one line."""


def resolve_model(name: str) -> Path:
    """A model yaml path, or a short name from configs/models (e.g. 'yolov8n-relu')."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (CONFIGS / name, CONFIGS / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml"))) or "none found"
    raise UsageError(f"model {name} not found: pass a model yaml or one of: {known}")


DATA_HELP = ("a COCO root or instances .json, a Roboflow COCO export, a VOCdevkit or VOC folder, a labelImg folder, "
             "or a dataset .yaml (ultralytics, or spikeyolo's format: coco|voc); `spikeyolo data PATH` shows what "
             "it finds")


def _add_data(p, required: bool = True) -> None:
    """--data and the split choice, the same on every command that reads a dataset."""
    if required:
        p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--train-split", help="the dataset's split(s) to train on, in its own names (e.g. trainval, "
                   "2007/trainval+2012/trainval, train2017, train); default: the layout's standard")
    p.add_argument("--val-split", help="the dataset's split to validate on (e.g. test, 2007/test, val2017, valid)")


def _add_data_command(sub) -> None:
    p = sub.add_parser("data", help="show what a dataset path holds", description="Detect a dataset's layout and "
                       "print its splits, images and boxes per class, and the boxes skipped and why.")
    p.add_argument("path", help=DATA_HELP)
    _add_data(p, required=False)


def _run_data(args) -> None:
    from spikeyolo.data.summary import dataset_summary, format_summary

    logging.getLogger("spikeyolo.data").setLevel(logging.ERROR)  # the summary says what the warnings would
    print(format_summary(dataset_summary(args.path, args.train_split, args.val_split)))


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a (QCFS) detector", description="Train a detector with QCFS activations.")
    _add_data(p)
    p.add_argument("--model", default="yolov8n-relu", help="model yaml or configs/models name (default yolov8n-relu)")
    p.add_argument("--from", dest="from_pt", help="an ultralytics (YOLOv8, YOLO11) or YOLOv5 v6 .pt to fine-tune with "
                   "QCFS; read without running its code (its classes become inert stand-ins)")
    p.add_argument("--levels", type=int, default=4, help="QCFS quantization levels L; 0 trains the plain ANN")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"initial QCFS threshold λ of every layer (default {DEFAULT_THRESHOLD})")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=16)
    _add_device(p)
    p.add_argument("--resume", metavar="LAST_PT", help="resume the run of this last.pt (it is unpickled: only your "
                   "own files; spikeyolo never picks one for you)")
    p.add_argument("--project", default="runs/train")
    p.add_argument("--name", default="exp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                   help="other ultralytics train settings, e.g. warmup_epochs=0 optimizer=AdamW lr0=5e-4")


def _run_train(args) -> None:
    from spikeyolo.quantize.trainer import train, train_settings

    try:
        settings = train_settings(args.settings)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.resume and not Path(args.resume).is_file():
        raise UsageError(f"--resume {args.resume} not found: pass the last.pt of the run to continue")
    if args.from_pt and not Path(args.from_pt).is_file():
        raise UsageError(f"--from {args.from_pt} not found: pass your ultralytics .pt file")
    if args.from_pt and Path(args.from_pt).suffix not in (".pt", ".safetensors"):
        raise UsageError(f"--from {args.from_pt}: pass a .pt checkpoint or spikeyolo .safetensors weights")
    model = Path(args.from_pt) if args.from_pt else resolve_model(args.model)
    result = train(args.data, model, levels=args.levels or None, epochs=args.epochs, imgsz=args.imgsz,
                   train_split=args.train_split, val_split=args.val_split, device=args.device, batch=args.batch,
                   resume=args.resume, threshold=args.threshold,
                   project=str(Path(args.project).resolve()), name=args.name, seed=args.seed, **settings)
    print(f"checkpoint: {result.checkpoint}\nmAP50 {result.map50:.4f}  mAP50-95 {result.map50_95:.4f}")


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert a trained detector into a spiking network",
                       description="Convert a spikeyolo checkpoint into an SNN artifact (T is chosen at run time).")
    p.add_argument("weights", help="a .safetensors checkpoint written by 'spikeyolo train'")
    p.add_argument("--mode", choices=("qcfs", "channel", "layer"), default="qcfs",
                   help="qcfs: θ = λ (QCFS models); channel / layer: data-based normalization (needs --calib)")
    p.add_argument("--calib", help="dataset for channel / layer normalization (VOC folder, COCO json, yaml)")
    p.add_argument("--calib-images", type=int, default=64, help="calibration images taken from the train split")
    p.add_argument("--percentile", type=float, default=99.9, help="activation percentile for normalization")
    p.add_argument("--initial-membrane", type=float, help="initial membrane as a fraction of θ (qcfs 0.5, else 0)")
    p.add_argument("--imgsz", type=int, help="calibration image size (default: the checkpoint's)")
    p.add_argument("--burst", type=int, help="spikes a neuron may emit per step: 1 is binary; default L of a QCFS "
                   "model (qcfs with burst = L equals the QCFS network from T = 1), else 1")
    p.add_argument("--snm", action="store_true", help=SNM_HELP)
    p.add_argument("--out", help="output path (default: <weights>-snn-<mode>.safetensors)")


def _run_convert(args) -> None:
    from spikeyolo.convert.artifact import save_snn
    from spikeyolo.convert.load import load_model, read_weights
    from spikeyolo.data import prepare_dataset
    from spikeyolo.data.images import image_batches, split_images

    if args.mode != "qcfs" and not args.calib:
        raise UsageError(f"--mode {args.mode} needs --calib DATA (images to measure activations on)")
    weights = read_weights(args.weights)
    if weights.is_snn:
        raise UsageError(f"{args.weights} is already a converted SNN: convert the detector checkpoint")

    def calibration(imgsz: int) -> list:
        return list(image_batches(split_images(prepare_dataset(args.calib), "train")[: args.calib_images], imgsz))

    loaded = load_model(weights, ann=False, mode=args.mode, burst=args.burst, snm=args.snm,
                        calibration=calibration if args.calib else None, percentile=args.percentile,
                        initial_membrane=args.initial_membrane, imgsz=args.imgsz)
    default_out = Path(args.weights).with_name(f"{Path(args.weights).stem}-snn-{args.mode}.safetensors")
    out = Path(args.out) if args.out else default_out
    meta = weights.meta
    source = {"weights": str(args.weights), "imgsz": loaded.settings["imgsz"], "levels": weights.levels,
              "metrics": meta.get("metrics"), "calib": args.calib,
              **({"events": meta["events"]} if meta.get("events") else {})}
    save_snn(loaded.snn, out, source)
    print(f"snn: {out}  ({args.mode}, {len(loaded.snn.neurons())} spiking layers: {loaded.settings['neurons']})")


def new_run_dir(base: str | Path, name: str = "exp") -> Path:
    """base/name, base/name2, ...: a new folder, never an earlier run's."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        folder = base / (name if i == 1 else f"{name}{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise UsageError(f"too many runs in {base}: clean it up")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _add_device(p) -> None:
    p.add_argument("--device", default="auto", help="auto (default: the first GPU if there is one, else the CPU), "
                   "cpu, or a CUDA index such as 0")


def _add_precision(p) -> None:
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="convolutions in this precision (autocast; membranes stay float32; val keeps its ANN row "
                        "float32). fp16/bf16 pay on GPUs; on CPUs without native support they are much slower")


def _add_val(sub) -> None:
    p = sub.add_parser("val", help="mAP of the ANN and its SNN at every T, with the SNN cost",
                       description="Evaluate the ANN and the SNN (simulated once to the largest T) side by side.")
    p.add_argument("--weights", required=True, help="a spikeyolo checkpoint or SNN artifact (.safetensors)")
    _add_data(p)
    p.add_argument("--timesteps", type=_int_list, default=[1, 2, 4, 8, 16, 32, 64], help="e.g. 1,2,4,8,16,32,64")
    p.add_argument("--split", default="val", choices=("train", "val", "test"),
                   help="which prepared split to evaluate: val is --val-split (VOC: its test set), train is "
                   "--train-split, test a third split where the dataset has one (a Roboflow export's test/)")
    p.add_argument("--mode", choices=("qcfs", "channel", "layer"), help="conversion of a checkpoint (default: qcfs "
                   "for QCFS models, else channel with calibration on the train split)")
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--burst", type=int, help="spikes per neuron and step when converting a checkpoint: 1 is binary; "
                   "default L of a QCFS model, else 1; an SNN artifact keeps the burst it was converted with")
    p.add_argument("--snm", action="store_true", help=SNM_HELP)
    p.add_argument("--imgsz", type=int)
    p.add_argument("--batch", type=int, default=16)
    _add_device(p)
    _add_precision(p)
    p.add_argument("--chunk", type=int, help="simulate this many steps at a time (memory ∝ batch × chunk; default: "
                   "all on a GPU, 16 // batch on the CPU)")
    p.add_argument("--no-ann", action="store_true", help="evaluate the SNN only")
    p.add_argument("--json", help="also write the JSON report here")
    p.add_argument("--project", default="runs/val")
    p.add_argument("--name", default="exp")


def _run_val(args) -> None:
    from spikeyolo.eval.report import table, write_csv, write_json, write_plots
    from spikeyolo.eval.val import validate

    report = validate(args.weights, args.data, args.timesteps, args.split, args.imgsz, args.batch, args.device,
                      args.mode, args.percentile, ann=not args.no_ann, burst=args.burst, chunk=args.chunk,
                      snm=args.snm, precision=args.precision, train_split=args.train_split,
                      val_split=args.val_split)
    folder = new_run_dir(args.project, args.name)
    for key, results in report.pop("coco_results", {}).items():
        write_json(results, folder / f"coco_results_{'ann' if key == 'ann' else 'T' + key}.json")
    write_json(report, folder / "report.json")
    write_csv(report, folder / "report.csv")
    write_plots(report, folder)
    if args.json:
        write_json(report, Path(args.json))
    print(table(report))
    print(f"report: {folder}/report.json, report.csv, map_vs_timesteps.png, firing_rate.png, map_vs_energy.png, "
          "energy_per_layer.png")


def _add_detect(sub) -> None:
    p = sub.add_parser("detect", help="detect objects in images, folders, videos, cameras or streams",
                       description="Detect with the spiking network (or --ann); writes annotated output and JSON "
                                   "lines.")
    p.add_argument("source", help="image, folder, glob, video file, camera index (0), stream URL, or an event "
                   "recording (.aedat4, .h5, .npz)")
    p.add_argument("--weights", help="spikeyolo .safetensors (default: the shipped BCCD QCFS model; for event "
                   "recordings the shipped event model)")
    p.add_argument("--timesteps", type=int, default=4, help="SNN timesteps T (default 4)")
    p.add_argument("--ann", action="store_true", help="run the quantized ANN instead of the SNN")
    p.add_argument("--burst", type=int, help="spikes a neuron may emit per step: 1 is the binary IF neuron; "
                   "default L of a QCFS model (integer spikes, equal to the QCFS net from T = 1)")
    p.add_argument("--snm", action="store_true", help=SNM_HELP)
    p.add_argument("--every-step", action="store_true", help="also write each frame's detections after every "
                   "step t = 1 … T into predictions.jsonl (key 'steps'; one SNN run, SNN only)")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--imgsz", type=int, help="input size (default: the weights')")
    _add_device(p)
    _add_precision(p)
    p.add_argument("--save-dir", default="runs/detect", help="runs go to new folders exp, exp2, ... in here")


def _run_detect(args) -> None:
    from spikeyolo.detect.predictor import Detector
    from spikeyolo.detect.run import detect
    from spikeyolo.detect.sources import open_source

    open_source(args.source)  # fail on a bad source before anything is loaded or created
    if args.every_step and args.ann:
        raise UsageError("--every-step reads the SNN after each step: it does not go with --ann")
    from spikeyolo.events.io import EVENT_SUFFIXES

    events = Path(args.source).suffix.lower() in EVENT_SUFFIXES
    detector = Detector(args.weights, args.timesteps, args.ann, args.conf, args.iou, args.imgsz, args.device,
                        burst=args.burst, events=events, snm=args.snm, precision=args.precision)
    folder = new_run_dir(args.save_dir)
    try:
        summary = detect(args.source, folder, detector, args.every_step)
    except BaseException:
        if not any(folder.iterdir()):
            folder.rmdir()
        raise
    skipped = f", {len(summary.skipped)} unreadable image(s) skipped" if summary.skipped else ""
    broken = ", video broke off early (frames read were saved)" if summary.broken_video else ""
    neurons = f" ({detector.neurons})" if detector.neurons else ""  # which neurons ran, as val and convert say
    print(f"{summary.mode}{neurons}: {summary.frames} frame(s), {summary.detections} detection(s), "
          f"{summary.fps:.1f} FPS{skipped}{broken}")
    for path in summary.outputs:
        print(f"saved {path}")


def _add_import(sub) -> None:
    p = sub.add_parser("import", help="an ultralytics or YOLOv5 .pt as spikeyolo safetensors (no code runs)",
                       description="Reads the .pt with torch's weights-only loader, every class it names replaced by "
                                   "an inert stand-in (nothing in the file runs), rebuilds the detector and writes "
                                   "spikeyolo's safetensors format. YOLOv5 v6.x maps onto ultralytics' v5u model: "
                                   "backbone and neck carried, Detect head initialized.")
    p.add_argument("pt", help="an ultralytics (YOLOv8, YOLO11, …) or YOLOv5 v6.x detection checkpoint (.pt)")
    p.add_argument("--out", help="output .safetensors (default: beside the .pt)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--activation", help="replace the model's activation, e.g. 'nn.ReLU()' (for QCFS fine-tuning)")


def _run_import(args) -> None:
    from spikeyolo.checkpoint import save_detector
    from spikeyolo.importing import import_checkpoint
    from spikeyolo.metadata import check_activation

    pt = Path(args.pt)
    if not pt.is_file():
        raise UsageError(f"{pt} not found: pass your .pt checkpoint")
    if args.activation:
        check_activation(args.activation, "--activation")
    imported = import_checkpoint(pt, args.activation)
    out = save_detector(imported.model, Path(args.out) if args.out else pt.with_suffix(".safetensors"),
                        imgsz=args.imgsz, imported_from=str(pt), imported_class=imported.source,
                        carried_tensors=len(imported.carried), initialized_tensors=len(imported.initialized))
    print(f"{pt} ({imported.source}): {len(imported.carried)} tensors carried, {len(imported.initialized)} "
          f"initialized{' (' + imported.initialized[0].rsplit('.', 3)[0] + ' …)' if imported.initialized else ''}")
    print(f"saved {out}")


def _add_webcam(sub) -> None:
    p = sub.add_parser("webcam", help="live demo: camera or video with boxes, FPS, T and spike activity",
                       description="Live window with the SNN's detections and firing rate per layer. Keys: +/- "
                                   "double/halve T, a toggles the ANN side by side, q quits.")
    p.add_argument("--source", default="0", help="camera index, video file or stream URL (default 0)")
    p.add_argument("--weights", help="spikeyolo .safetensors (default: the shipped model; with --events the "
                   "shipped event model)")
    p.add_argument("--timesteps", type=int, default=4)
    p.add_argument("--events", action="store_true", help="simulate a DVS from the frames and run the event model")
    p.add_argument("--side-by-side", action="store_true", help="start with the ANN beside the SNN")
    p.add_argument("--headless", action="store_true", help="no window: write the rendered frames to --output")
    p.add_argument("--output", help="video to write (.mp4); required with --headless")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--screenshot", help="also save the last rendered frame as an image")
    p.add_argument("--conf", type=float, default=0.25)
    _add_device(p)
    _add_precision(p)


def _run_webcam(args) -> None:
    from spikeyolo.demo import LiveDemo

    if args.headless and not args.output:
        raise UsageError("--headless needs --output VIDEO.mp4 (there is no window to show the frames)")
    if args.output and Path(args.output).suffix.lower() != ".mp4":
        raise UsageError(f"--output {args.output}: write an .mp4 video")
    demo = LiveDemo(args.source, args.weights, args.timesteps, args.events, args.side_by_side, args.conf,
                    device=args.device, precision=args.precision)
    summary = demo.run(args.headless, args.output, args.max_frames, args.screenshot)
    saved = f", saved {summary.output}" if summary.output else ""
    print(f"{summary.frames} frame(s) at {summary.fps:.1f} FPS, T={summary.timesteps}{saved}")


def _add_benchmark(sub) -> None:
    p = sub.add_parser("benchmark", help="speed of the ANN, our SNN engine, a naive loop and SpikingJelly",
                       description="Times every engine side by side in one run: images/s, per-timestep cost as a "
                                   "ratio to one ANN forward, peak memory.")
    p.add_argument("--weights", help="a QCFS checkpoint (default: the shipped BCCD model)")
    p.add_argument("--imgsz", type=_int_list, default=[320], help="e.g. 320,640")
    p.add_argument("--timesteps", type=_int_list, default=[1, 4], help="e.g. 1,4,8,16")
    p.add_argument("--batch", type=_int_list, default=[1], help="e.g. 1,16")
    _add_device(p)
    _add_precision(p)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (median reported)")
    p.add_argument("--engines", help="comma list of ann,snn,snn_folded,snn_nchw,snn_triton,naive,spikingjelly,"
                                     "spikingjelly_ms (default: all)")
    p.add_argument("--json", help="write the figures here")


def _run_benchmark(args) -> None:
    from spikeyolo.bench.speed import run_benchmark, summary
    from spikeyolo.detect.predictor import DEFAULT_WEIGHTS, _check_weights

    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    _check_weights(weights)
    engines = tuple(args.engines.split(",")) if args.engines else None
    from spikeyolo.bench.speed import ENGINES

    known = set(ENGINES)
    if engines and not set(engines) <= known:
        raise UsageError(f"--engines {args.engines}: choose from {', '.join(sorted(known))}")
    from spikeyolo.device import torch_device

    print(f"device {torch_device(args.device)}, torch threads {torch_threads()}, {args.precision} convolutions")
    try:
        results = run_benchmark(weights, args.imgsz, args.timesteps, args.batch, args.device, args.repeats, engines,
                                precision=args.precision)
    except (ImportError, ValueError) as err:
        raise UsageError(str(err)) from err
    report = summary(results)
    for row in report["speedups"]:
        neurons = (f"; neurons alone {row['neuron_speedup']:.1f}x, at most {row['bound']:.2f}x with free neurons"
                   if "bound" in row else "")
        print(f"our SNN vs {row['vs']}: {row['speedup']:.2f}x  (imgsz {row['imgsz']}, batch {row['batch']}, "
              f"T {row['timesteps']}{neurons})")
    if args.json:
        from spikeyolo.eval.report import write_json

        write_json(report, Path(args.json))
        print(f"saved {args.json}")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


COMMANDS = {"data": (_add_data_command, _run_data), "train": (_add_train, _run_train),
            "convert": (_add_convert, _run_convert), "val": (_add_val, _run_val),
            "detect": (_add_detect, _run_detect), "import": (_add_import, _run_import),
            "webcam": (_add_webcam, _run_webcam), "benchmark": (_add_benchmark, _run_benchmark)}


# (option, low, high) of every integer option, wherever a command has it (None: unset, its default applies)
INTEGER_OPTIONS = (("timesteps", 1, limits.MAX_TIMESTEPS), ("batch", 1, limits.MAX_BATCH),
                   ("chunk", 1, limits.MAX_TIMESTEPS), ("burst", 1, limits.MAX_BURST),
                   ("levels", 0, limits.MAX_LEVELS), ("calib_images", 1, limits.MAX_CALIB_IMAGES),
                   ("repeats", 1, 1000), ("epochs", 1, 100_000), ("max_frames", 1, 10**9))
REAL_OPTIONS = (("conf", 0.0, 1.0, False), ("iou", 0.0, 1.0, False), ("percentile", 0.0, 100.0, True),
                ("initial_membrane", -4.0, 4.0, False), ("threshold", 0.0, 1e6, True))
OUTPUT_DIRS = ("save_dir", "project")
OUTPUT_FILES = ("json", "out", "output", "screenshot")


def _check_numbers(args) -> None:
    """Every number option within spikeyolo.limits, before anything is loaded (one line, exit 2): the one place
    the commands' numbers are checked."""
    for name, low, high in INTEGER_OPTIONS:
        for value in _values(getattr(args, name, None)):
            limits.integer(value, "command line", f"--{name.replace('_', '-')}", low, high)
    for name, low, high, low_open in REAL_OPTIONS:
        if getattr(args, name, None) is not None:
            limits.real(getattr(args, name), "command line", f"--{name.replace('_', '-')}", low, high, low_open)
    for value in _values(getattr(args, "imgsz", None)):
        limits.image_size(value, "command line", "--imgsz")


def _values(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def _check_outputs(args) -> None:
    """Output folders and files writable, run names plain names: before any work (a webcam run would otherwise
    process a whole video and then fail to save it)."""
    from spikeyolo.atomic import check_output_dir, check_output_file

    name = getattr(args, "name", None)
    if name is not None and (not name or Path(name).name != name or name in (".", "..")):
        raise UsageError(f"--name {name!r} must be a plain folder name (no / or ..): runs stay inside --project")
    for option in OUTPUT_DIRS:
        if getattr(args, option, None):
            check_output_dir(getattr(args, option), f"--{option.replace('_', '-')}")
    for option in OUTPUT_FILES:
        if getattr(args, option, None):
            check_output_file(getattr(args, option), f"--{option}")


def _check_device(args) -> None:
    """A --device this machine lacks is one clear line before anything runs."""
    from spikeyolo.device import check_device

    if getattr(args, "device", None) is not None:
        try:
            check_device(args.device)
        except ValueError as err:
            raise UsageError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikeyolo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from spikeyolo.checkpoint import CheckpointError
    from spikeyolo.convert import ConversionError
    from spikeyolo.data import DatasetError
    from spikeyolo.events import EventError
    from spikeyolo.detect.sources import SourceError

    from spikeyolo.atomic import OutputError, remove_pending

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _check_numbers(args)
        _check_device(args)
        _check_outputs(args)
        COMMANDS[args.command][1](args)
    except (UsageError, DatasetError, CheckpointError, ConversionError, SourceError, EventError, OutputError,
            limits.LimitError) as err:
        print(f"spikeyolo {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except ValueError as err:  # the Python API's checks (a value no CLI check caught); SPIKEYOLO_DEBUG=1: traceback
        if os.environ.get("SPIKEYOLO_DEBUG"):
            raise
        print(f"spikeyolo {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        remove_pending()
        print(f"spikeyolo {args.command}: interrupted (nothing half-written was kept)", file=sys.stderr)
        return 130
    except Terminated:
        remove_pending()
        print(f"spikeyolo {args.command}: terminated (nothing half-written was kept)", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else repr(err)


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that every writer removes its temporaries on the way out."""


def _terminate(signum, frame):
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
