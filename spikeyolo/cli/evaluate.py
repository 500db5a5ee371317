"""Commands that measure a model: val and benchmark."""
from __future__ import annotations

from pathlib import Path

from spikeyolo.cli.common import (SNM_HELP, UsageError, add_data_options, add_output, float_list, int_list,
    add_device, add_precision, run_folder, torch_threads)
from spikeyolo.defaults import IOU, VAL_TIMESTEPS


def _add_snn_options(p, batch: int) -> None:
    """What val and layers share: the split, how a checkpoint is converted, the input size, batch and chunk."""
    p.add_argument("--split", default="val",
                   help="which split to evaluate: a role (val is --val-split, e.g. a VOC folder's test set; train is "
                   "--train-split; test a third split where the dataset has one, e.g. a Roboflow export's test/) or "
                   "the dataset's own name of one (test for a VOC folder's val role); `spikeyolo data` lists them")
    p.add_argument("--mode", choices=("qcfs", "channel", "layer"), help="conversion of a checkpoint (default: qcfs "
                   "for QCFS models, else channel with calibration on the train split)")
    p.add_argument("--percentile", type=float, default=99.9, help="activation percentile of channel / layer "
                   "normalization")
    p.add_argument("--burst", type=int, help="spikes per neuron and step when converting a checkpoint: 1 is binary; "
                   "default L of a QCFS model, else 1; an SNN artifact keeps the burst it was converted with")
    p.add_argument("--snm", action="store_true", help=SNM_HELP)
    p.add_argument("--imgsz", type=int, help="image size (default: the weights')")
    p.add_argument("--batch", type=int, default=batch, help="images per batch")
    add_device(p)
    p.add_argument("--chunk", type=int, help="simulate this many steps at a time (memory ∝ batch × chunk; default: "
                   "all on a GPU, 16 // batch on the CPU)")


def add_val(sub) -> None:
    p = sub.add_parser("val", help="mAP of the ANN and its SNN at every T, with the SNN cost",
                       description="Evaluate the ANN and the SNN (simulated once to the largest T) side by side.")
    p.add_argument("--weights", required=True, help="a spikeyolo checkpoint or SNN artifact (.safetensors)")
    add_data_options(p)
    p.add_argument("--timesteps", type=int_list, default=list(VAL_TIMESTEPS), help="the T to report, from one SNN run "
                   "to the largest, e.g. 1,2,4,8,16,32,64 (its time grows with the largest T)")
    p.add_argument("--ann", help="the detector checkpoint for the ANN row of an SNN artifact (default: the checkpoint "
                   "it came from when that lies beside it)")
    p.add_argument("--images", type=int, help="evaluate the first this many images only (a quick look; default: all "
                   "of the split)")
    p.add_argument("--conf", type=float, default=0.001, help="confidence threshold before the mAP (ultralytics' val)")
    p.add_argument("--iou", type=float, default=IOU, help="NMS IoU threshold")
    _add_snn_options(p, batch=16)
    add_precision(p)
    p.add_argument("--compile", action="store_true", help="run the SNN through torch.compile (minutes of compiling "
                   "first); the cost meter watches every layer of the eager forward, so the report has no cost")
    p.add_argument("--no-ann", action="store_true", help="evaluate the SNN only")
    p.add_argument("--threshold-scale", type=float_list, default=[1.0], help="scale every threshold θ by each of "
                   "these (e.g. 0.8,1,1.25: Wu et al.'s trade-off of accuracy against operations at each T)")
    add_output(p, "val")

def run_val(args) -> None:
    from spikeyolo.eval.report import table, tradeoff_table, write_run
    from spikeyolo.eval.val import validate

    from spikeyolo.limits import MAX_THRESHOLD_SCALES

    if args.ann and args.no_ann:
        raise UsageError("--ann names the ANN row's checkpoint: it does not go with --no-ann")
    if len(args.threshold_scale) > MAX_THRESHOLD_SCALES:
        raise UsageError(f"--threshold-scale: at most {MAX_THRESHOLD_SCALES} values (each is a full evaluation), got "
                         f"{len(args.threshold_scale)}")
    reports = [validate(args.weights, args.data, args.timesteps, args.split, args.imgsz, args.batch, args.device,
                        args.mode, args.percentile, ann=not args.no_ann and not i, burst=args.burst, chunk=args.chunk,
                        snm=args.snm, precision=args.precision, train_split=args.train_split,
                        val_split=args.val_split, threshold_scale=scale, cost=not args.compile,
                        compile=args.compile, ann_weights=args.ann, conf=args.conf, iou=args.iou,
                        max_images=args.images)
               for i, scale in enumerate(args.threshold_scale)]
    with run_folder(args) as folder:
        for report in reports:
            write_run(report, folder if len(reports) == 1 else folder / f"threshold_x{report['threshold_scale']:g}")
            print(table(report))
    if len(reports) > 1:
        print(tradeoff_table(reports))
    print(f"report: {folder}: report.json, report.csv, map_vs_timesteps.png, firing_rate.png, map_vs_energy.png, "
          f"energy_per_layer.png{' (one folder per threshold scale)' if len(reports) > 1 else ''}")

def add_layers(sub) -> None:
    p = sub.add_parser("layers", help="where the SNN departs from its ANN: the error of every spiking layer at each T",
                       description="Runs the ANN and the SNN on the same images and prints, for every spiking layer "
                       "and head accumulator in the order the network runs them, the relative error of the SNN's "
                       "output over the first T steps against the ANN's activation, its mean shift, and what is left "
                       "once each channel's mean difference is removed (the part bias correction cannot remove).")
    p.add_argument("--weights", required=True, help="a spikeyolo checkpoint, or an SNN artifact (e.g. a tuned one)")
    p.add_argument("--ann", help="the detector checkpoint to compare with (default: --weights itself, or for an SNN "
                   "artifact the checkpoint it came from when that lies beside it)")
    add_data_options(p)
    p.add_argument("--timesteps", type=int_list, default=[1, 2, 4, 8], help="e.g. 1,2,4,8")
    p.add_argument("--images", type=int, default=16, help="the first this many images of the split")
    _add_snn_options(p, batch=8)
    add_output(p, "layers")


def run_layers(args) -> None:
    from spikeyolo.eval.layers import measure_layers, table
    from spikeyolo.eval.report import write_json

    measured, errors = measure_layers(args.weights, args.data, args.timesteps, args.split, args.images, args.imgsz,
                                      args.batch, args.device, args.mode, args.percentile, burst=args.burst,
                                      snm=args.snm, train_split=args.train_split, val_split=args.val_split,
                                      ann=args.ann, chunk=args.chunk)
    print(f"{measured['images']} images of {args.data} ({measured['split']}), {measured['mode']} mode, burst "
          f"{measured['burst']}{', SNM' if measured['snm'] else ''}, {measured['imgsz']} px")
    print(table(errors, measured["timesteps"]))
    with run_folder(args) as folder:
        saved = write_json({**measured, "layers": [e.as_dict() for e in errors]}, folder / "layers.json")
    print(f"saved {saved}")


def add_benchmark(sub) -> None:
    p = sub.add_parser("benchmark", help="speed of the ANN, our SNN engine, a naive loop and SpikingJelly",
                       description="Times every engine side by side in one run: images/s, per-timestep cost as a "
                                   "ratio to one ANN forward, peak memory.")
    p.add_argument("--weights", help="a QCFS checkpoint (default: the shipped BCCD model)")
    p.add_argument("--imgsz", type=int_list, default=[320], help="e.g. 320,640")
    p.add_argument("--timesteps", type=int_list, default=[1, 4], help="e.g. 1,4,8,16")
    p.add_argument("--batch", type=int_list, default=[1], help="e.g. 1,16")
    add_device(p)
    add_precision(p)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (median reported)")
    p.add_argument("--engines", help="comma list of ann,snn,snn_compiled,snn_binary,snn_folded,snn_nchw,snn_triton,"
                                     "naive,spikingjelly,spikingjelly_ms (default: all but snn_compiled). snn is the "
                                     "network detect runs; the SpikingJelly comparison uses binary neurons "
                                     "(snn_binary)")
    p.add_argument("--compile", action="store_true", help="also time snn_compiled: detect's network through "
                   "torch.compile, side by side with it eager (compiling takes minutes, outside the timing)")
    add_output(p, "benchmark")

def run_benchmark(args) -> None:
    from spikeyolo.bench.speed import run_benchmark, summary
    from spikeyolo.detect.predictor import BCCD_WEIGHTS, _check_weights

    weights = Path(args.weights) if args.weights else BCCD_WEIGHTS
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
                                precision=args.precision, compiled=args.compile)
    except (ImportError, ValueError) as err:
        raise UsageError(str(err)) from err
    report = summary(results)
    for row in report["speedups"]:
        neurons = (f"; neurons alone {row['neuron_speedup']:.1f}x, at most {row['bound']:.2f}x with free neurons"
                   if "bound" in row else "")
        print(f"{row['ours']} vs {row['vs']}: {row['speedup']:.2f}x  (imgsz {row['imgsz']}, batch {row['batch']}, "
              f"T {row['timesteps']}{neurons})")
    from spikeyolo.eval.report import write_json

    with run_folder(args) as folder:
        saved = write_json(report, folder / "benchmark.json")
    print(f"saved {saved}")
