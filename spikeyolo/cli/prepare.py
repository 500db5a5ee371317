"""Commands that make a model: data, train, import, convert."""
from __future__ import annotations

import logging
from pathlib import Path

from spikeyolo.defaults import QCFS_THRESHOLD as DEFAULT_THRESHOLD
from spikeyolo.cli.common import (SNM_HELP, UsageError, resolve_model, DATA_HELP, add_data_options, add_device,
                                  add_output, int_list, run_folder)


def add_data_command(sub) -> None:
    p = sub.add_parser("data", help="show what a dataset path holds", description="Detect a dataset's layout and "
                       "print its splits, images and boxes per class, and the boxes skipped and why.")
    p.add_argument("path", help=DATA_HELP)
    add_data_options(p, required=False)

def run_data(args) -> None:
    from spikeyolo.data.summary import dataset_summary, format_summary

    logging.getLogger("spikeyolo.data").setLevel(logging.ERROR)  # the summary says what the warnings would
    print(format_summary(dataset_summary(args.path, args.train_split, args.val_split)))

def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a (QCFS) detector", description="Train a detector with QCFS activations.")
    add_data_options(p)
    p.add_argument("--model", default="yolov8n-relu", help="model yaml or configs/models name (default yolov8n-relu)")
    p.add_argument("--from", dest="from_pt", help="an ultralytics (YOLOv8, YOLO11) or YOLOv5 v6 .pt to fine-tune with "
                   "QCFS; read without running its code (its classes become inert stand-ins)")
    p.add_argument("--levels", type=int, default=4, help="QCFS quantization levels L; 0 trains the plain ANN")
    p.add_argument("--teacher", help="a detector to distil from while training (its outputs join the labels' loss): "
                   "spikeyolo .safetensors of the same classes (e.g. the SiLU model a QCFS one comes from), or a YOLOv5 "
                   "v6.x .pt whose own anchor head teaches the data's classes (read without unpickling)")
    p.add_argument("--teacher-gain", type=float, default=1.0, help="weight of the distillation term (default 1)")
    p.add_argument("--teacher-features", type=float, default=0.0, metavar="WEIGHT",
                   help="also pull the neck's outputs towards the teacher's, with this weight (same widths needed)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"initial QCFS threshold λ of every layer (default {DEFAULT_THRESHOLD})")
    p.add_argument("--epochs", type=int, default=100, help="training epochs")
    p.add_argument("--imgsz", type=int, default=640, help="training image size")
    p.add_argument("--batch", type=int, default=16, help="images per batch")
    add_device(p, many=True)
    p.add_argument("--resume", metavar="LAST_PT", help="resume the run of this last.pt: only checkpoints a spikeyolo "
                   "run wrote on this machine (a signature beside each; it is unpickled); never picked for you")
    add_output(p, "train")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                   help="other ultralytics train settings, e.g. warmup_epochs=0 optimizer=AdamW lr0=5e-4")

def run_train(args) -> None:
    from spikeyolo.quantize.trainer import train, train_settings

    try:
        settings = train_settings(args.settings)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.resume and not Path(args.resume).is_file():
        raise UsageError(f"--resume {args.resume} not found: pass the last.pt of the run to continue")
    if args.resume:
        from spikeyolo.quantize.signature import check_signed

        check_signed(args.resume)  # a stranger's last.pt would run its code when unpickled: refused before any work
    if args.from_pt and not Path(args.from_pt).is_file():
        raise UsageError(f"--from {args.from_pt} not found: pass your ultralytics .pt file")
    if args.from_pt and Path(args.from_pt).suffix not in (".pt", ".safetensors"):
        raise UsageError(f"--from {args.from_pt}: pass a .pt checkpoint or spikeyolo .safetensors weights")
    model = Path(args.from_pt) if args.from_pt else resolve_model(args.model)
    teacher = _teacher(args)
    result = train(args.data, model, levels=args.levels or None, epochs=args.epochs, imgsz=args.imgsz,
                   train_split=args.train_split, val_split=args.val_split, device=args.device, batch=args.batch,
                   resume=args.resume, threshold=args.threshold, teacher=teacher,
                   project=str(Path(args.project).resolve()), name=args.name, seed=args.seed,
                   exist_ok=args.exist_ok, **settings)
    print(f"checkpoint: {result.checkpoint}\nmAP50 {result.map50:.4f}  mAP50-95 {result.map50_95:.4f}")

def _teacher(args):
    """--teacher: spikeyolo .safetensors or a YOLOv5 v6.x .pt (read without unpickling), checked before any work."""
    if not args.teacher:
        if args.teacher_gain != 1.0 or args.teacher_features:
            raise UsageError("--teacher-gain and --teacher-features need --teacher")
        return None
    from spikeyolo.quantize.trainer import TeacherSettings

    if not Path(args.teacher).is_file():
        raise UsageError(f"--teacher {args.teacher} not found: pass a .safetensors detector or a YOLOv5 .pt")
    if Path(args.teacher).suffix not in (".safetensors", ".pt"):
        raise UsageError(f"--teacher {args.teacher}: pass spikeyolo .safetensors weights or a YOLOv5 v6.x .pt")
    return TeacherSettings(args.teacher, args.teacher_gain, args.teacher_features)

def add_import(sub) -> None:
    p = sub.add_parser("import", help="an ultralytics or YOLOv5 .pt as spikeyolo safetensors (no code runs)",
                       description="Reads the .pt with torch's weights-only loader, every class it names replaced by "
                                   "an inert stand-in (nothing in the file runs), rebuilds the detector and writes "
                                   "spikeyolo's safetensors format. YOLOv5 v6.x maps onto ultralytics' v5u model: "
                                   "backbone and neck carried, Detect head initialized "
                                   "(or, with --anchor-head, carried as YOLOv5's own).")
    p.add_argument("pt", help="an ultralytics (YOLOv8, YOLO11, …) or YOLOv5 v6.x detection checkpoint (.pt)")
    p.add_argument("--imgsz", type=int, default=640, help="the image size recorded in the weights")
    p.add_argument("--activation", help="replace the model's activation, e.g. 'nn.ReLU()' (for QCFS fine-tuning)")
    p.add_argument("--names", help="comma-separated class names to fine-tune on instead of the checkpoint's (the "
                   "class outputs are initialized, everything else carried)")
    p.add_argument("--anchor-head", action="store_true", help="YOLOv5 v6.x only: carry its anchor-based head too (all "
                   "its classes and what it knows; to self-distil with 'spikeyolo distill' rather than train on labels)")
    add_output(p, "import")

def run_import(args) -> None:
    from spikeyolo.quantize.checkpoint import save_detector
    from spikeyolo.importing import import_checkpoint
    from spikeyolo.metadata import check_activation

    pt = Path(args.pt)
    if not pt.is_file():
        raise UsageError(f"{pt} not found: pass your .pt checkpoint")
    if args.activation:
        check_activation(args.activation, "--activation")
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        raise UsageError(f"--names {args.names!r}: give distinct, non-empty class names separated by commas")
    imported = import_checkpoint(pt, args.activation, names, anchor_head=args.anchor_head)
    with run_folder(args) as folder:
        out = save_detector(imported.model, folder / f"{pt.stem}.safetensors", imgsz=args.imgsz,
                            imported_from=str(pt), imported_class=imported.source,
                            carried_tensors=len(imported.carried), initialized_tensors=len(imported.initialized))
    print(f"{pt} ({imported.source}): {len(imported.carried)} tensors carried, {len(imported.initialized)} "
          f"initialized{' (' + imported.initialized[0].rsplit('.', 3)[0] + ' …)' if imported.initialized else ''}")
    print(f"saved {out}")

def add_convert(sub) -> None:
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
    add_output(p, "convert")

def run_convert(args) -> None:
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
    meta = weights.meta
    source = {"weights": str(args.weights), "imgsz": loaded.settings["imgsz"], "levels": weights.levels,
              "metrics": meta.get("metrics"), "calib": args.calib,
              **({"events": meta["events"]} if meta.get("events") else {})}
    with run_folder(args) as folder:
        out = folder / f"{Path(args.weights).stem}-snn-{args.mode}.safetensors"
        save_snn(loaded.snn, out, source)
    print(f"snn: {out}  ({args.mode}, {len(loaded.snn.neurons())} spiking layers: {loaded.settings['neurons']})")

def add_tune(sub) -> None:
    p = sub.add_parser("tune", help="tune a converted SNN for ±1 spikes at a target T (bias correction, then "
                       "fine-tuning with surrogate gradients taught by the ANN and the labels)",
                       description="Convert a QCFS checkpoint and tune its SNN at --timesteps: bias correction layer "
                       "by layer, then hybrid fine-tuning distilled from the ANN on the train split's images, the "
                       "labels' detection loss beside it (--label-gain). An interrupted run continues from the "
                       "resume file in its run folder: the same command with --name NAME --exist-ok. Several "
                       "processes: torchrun --nproc_per_node N -m spikeyolo.cli tune ... (each takes its part of "
                       "every --batch; gloo on CPUs, NCCL on GPUs).")
    p.add_argument("weights", help="a QCFS detector checkpoint (.safetensors) written by 'spikeyolo train'")
    add_data_options(p)
    p.add_argument("--timesteps", type=int, default=4, help="the T to tune for (default 4)")
    p.add_argument("--burst", type=int, default=1, help="spikes per neuron and step (default 1: ±1 spikes)")
    p.add_argument("--snm", action="store_true", help=SNM_HELP)
    p.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs over the train split (0: calibration "
                   "only; docs/results.md, BCCD's 292 images at 320 px: 6 take ~25 min on 2 CPU cores and reach 96.7 %% of the ANN's "
                   "mAP50 at T = 4 with binary spikes, 10 reach 98.9 %%)")
    p.add_argument("--lr", type=float, default=6e-4, help="Adam learning rate, cosine-decayed to 0")
    p.add_argument("--batch", type=int, default=8, help="images per fine-tuning step")
    p.add_argument("--images", type=int, help="train images used (default: all of the split)")
    p.add_argument("--calib-images", type=int, default=64, help="images for bias correction")
    p.add_argument("--no-calibrate", action="store_true", help="skip bias correction")
    p.add_argument("--sharpness", type=float, default=4.0, help="surrogate gradient sharpness a (sigmoid)")
    p.add_argument("--feature-weight", type=float, default=0.0, help="weight of the layer-by-layer loss (each "
                   "spiking layer's rate against its ANN activation) beside the head's")
    p.add_argument("--train-thresholds", action="store_true", help="train every layer's thresholds too, one per "
                   "channel (DIET-SNN)")
    p.add_argument("--loss", choices=("anchors", "objects"), default="anchors", help="distillation loss balance: "
                   "anchors (default: the class term averaged over all anchors) or objects (per unit of the ANN's "
                   "total confidence, box term x3; no better on BCCD, see docs/results.md)")
    p.add_argument("--label-gain", type=float, help="weight of the labels' detection loss "
                   "(ultralytics': box, class, DFL) beside the ANN's teaching (default 0.1; 0: the ANN alone, no "
                   "labels used; docs/results.md: on BCCD 0.760 -> 0.790 mAP50 at T = 4); a model with YOLOv5's "
                   "anchor head learns from its ANN alone (default 0)")
    p.add_argument("--readouts", type=int_list, help="steps after which the head is distilled, e.g. 2,4: one network "
                   "for several T (default: --timesteps only)")
    p.add_argument("--imgsz", type=int, help="image size (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (image order, flips)")
    add_device(p)
    add_output(p, "tune")

def _label_gain(args) -> float:
    """--label-gain, or its default: 0.1, and 0 for a model with YOLOv5's anchor head (no labels' loss for it)."""
    if args.label_gain is not None:
        return args.label_gain
    from spikeyolo.convert.load import read_weights

    return 0.0 if read_weights(args.weights).meta.get("model_yaml", {}).get("anchors") else 0.1

def run_tune(args) -> None:
    from contextlib import nullcontext

    from spikeyolo.device import torch_device
    from spikeyolo.tune.distributed import join, leave
    from spikeyolo.tune.run import TuneSettings, tune

    settings = TuneSettings(
        weights=str(args.weights), data=str(args.data), timesteps=args.timesteps, burst=args.burst, snm=args.snm,
        calibrate=not args.no_calibrate, calib_images=args.calib_images, epochs=args.epochs, lr=args.lr,
        batch=args.batch, images=args.images, imgsz=args.imgsz, sharpness=args.sharpness,
        feature_weight=args.feature_weight, thresholds=args.train_thresholds, seed=args.seed,
        readouts=tuple(args.readouts) if args.readouts else None, loss=args.loss,
        label_gain=_label_gain(args), train_split=args.train_split)
    ranks, device = join(torch_device(args.device))  # under torchrun: one of several processes
    try:
        with run_folder(args) if ranks.first else nullcontext() as folder:  # rank 0 makes it, the others learn it
            folder = Path(ranks.share(str(folder)))
            out = folder / f"{Path(args.weights).stem}-snn-tuned-T{args.timesteps}.safetensors"
            if ranks.first:
                print(f"tune: writing {out} (interrupted? the same command with --name {folder.name} --exist-ok "
                      f"continues){f'; {ranks.world} processes' if ranks.world > 1 else ''}")
            record, _ = tune(settings, out, device, ranks)
    finally:
        leave()
    if not ranks.first:
        return
    losses = ", ".join(f"{loss:.4f}" for loss in record["losses"] or []) or "none"
    print(f"snn: {out}  (tuned for T = {args.timesteps}: {record['method']}; loss per epoch: {losses}; "
          f"{record['seconds'] / 60:.1f} min)")
