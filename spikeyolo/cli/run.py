"""Commands that run a model on images, video and cameras: detect and webcam."""
from __future__ import annotations

from pathlib import Path

from spikeyolo.cli.common import (SNM_HELP, UsageError, add_compile, add_device, add_output, add_precision,
                                  add_stream, index_list, run_folder, stream_policy)


def add_detect(sub) -> None:
    p = sub.add_parser("detect", help="detect objects in images, folders, videos, cameras or streams",
                       description="Detect with the spiking network (or --ann); writes annotated output and JSON "
                                   "lines.")
    p.add_argument("source", help="image, folder, glob, video file, camera index (0), stream URL, or an event "
                   "recording (.aedat4, .h5, .npz)")
    p.add_argument("--weights", help="spikeyolo .safetensors (default: the shipped COCO model, 80 everyday "
                   "classes, for images, videos, cameras and streams; the shipped event model for event recordings; "
                   "blood cells: weights/bccd-yolov8n-qcfs.safetensors)")
    p.add_argument("--timesteps", type=int, default=4, help="SNN timesteps T (default 4)")
    p.add_argument("--ann", action="store_true", help="run the quantized ANN instead of the SNN")
    p.add_argument("--burst", type=int, help="spikes a neuron may emit per step: 1 is the binary IF neuron; "
                   "default L of a QCFS model (integer spikes, equal to the QCFS net from T = 1)")
    p.add_argument("--snm", action="store_true", help=SNM_HELP)
    p.add_argument("--every-step", action="store_true", help="also write each frame's detections after every "
                   "step t = 1 … T into predictions.jsonl (key 'steps'; one SNN run, SNN only)")
    p.add_argument("--batch", type=int, default=1, help="frames per model call (default 1: a stream's latency; "
                   "larger batches can raise the throughput on image folders)")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--max-det", type=int, default=300, help="at most this many detections an image")
    p.add_argument("--classes", type=index_list, metavar="I,J", help="keep only these class indices, e.g. 0,2")
    p.add_argument("--save-txt", action="store_true", help="also write labels/<image>.txt (video: <video>_<frame>.txt) "
                   "in YOLO format: class x_center y_center width height score, normalized to the image")
    p.add_argument("--imgsz", type=int, help="input size (default: the weights')")
    add_device(p)
    add_precision(p)
    add_stream(p)
    add_compile(p)
    add_output(p, "detect")

def run_detect(args) -> None:
    from spikeyolo.detect.predictor import Detector
    from spikeyolo.detect.run import detect
    from spikeyolo.detect.sources import open_source

    open_source(args.source)  # fail on a bad source before anything is loaded or created
    if args.every_step and args.ann:
        raise UsageError("--every-step reads the SNN after each step: it does not go with --ann")
    from spikeyolo.events.io import EVENT_SUFFIXES

    events = Path(args.source).suffix.lower() in EVENT_SUFFIXES
    stream = stream_policy(args)
    if (stream or args.compile) and args.ann:
        raise UsageError("--stream and --compile run the SNN: they do not go with --ann")
    if stream and args.batch != 1:
        raise UsageError("--stream runs frames one at a time, in order, through one network: use --batch 1")
    detector = Detector(args.weights, args.timesteps, args.ann, args.conf, args.iou, args.imgsz, args.device,
                        burst=args.burst, events=events, snm=args.snm, precision=args.precision, stream=stream,
                        compile=args.compile, max_det=args.max_det, classes=args.classes)
    if args.classes and max(args.classes) >= len(detector.names):
        raise UsageError(f"--classes {','.join(map(str, args.classes))}: {detector.weights} has classes 0 to "
                         f"{len(detector.names) - 1} ({', '.join(list(detector.names.values())[:8])})")
    with run_folder(args) as folder:
        summary = detect(args.source, folder, detector, args.every_step, batch=args.batch, save_txt=args.save_txt)
    skipped = (f", {len(summary.skipped)} unreadable image(s) skipped: {', '.join(summary.skipped[:3])}"
               f"{' …' if len(summary.skipped) > 3 else ''}") if summary.skipped else ""
    broken = ", video broke off early (frames read were saved)" if summary.broken_video else ""
    neurons = f" ({detector.neurons})" if detector.neurons else ""  # which neurons ran, as val and convert say
    print(f"{summary.mode}{neurons}: {summary.frames} frame(s), {summary.detections} detection(s), "
          f"{summary.fps:.1f} FPS (after an untimed warm-up){skipped}{broken}")
    print("per frame: " + ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in summary.stages.items()))
    print(f"saved {len(summary.outputs)} file(s) to {folder}" + "".join(f"\n  {path.name}" for path in
                                                                       summary.outputs[:5]))
    if summary.interrupted:
        raise KeyboardInterrupt  # the frames processed before Ctrl-C were saved; exit as interrupted

def add_webcam(sub) -> None:
    p = sub.add_parser("webcam", help="live demo: camera or video with boxes, FPS, T and spike activity",
                       description="Live window with the SNN's detections and firing rate per layer. Keys: +/- "
                                   "double/halve T, a toggles the ANN side by side, q quits.")
    p.add_argument("--source", default="0", help="camera index, video file or stream URL (default 0)")
    p.add_argument("--weights", help="spikeyolo .safetensors (default: the shipped COCO model, 80 everyday "
                   "classes; with --events the shipped event model)")
    p.add_argument("--timesteps", type=int, default=4, help="SNN timesteps T at the start (keys +/- change it)")
    p.add_argument("--events", action="store_true", help="simulate a DVS from the frames and run the event model")
    p.add_argument("--side-by-side", action="store_true", help="start with the ANN beside the SNN")
    p.add_argument("--headless", action="store_true", help="no window: the rendered frames go to the run folder's "
                   "webcam.mp4 (implies --save)")
    p.add_argument("--save", action="store_true", help="write the rendered frames to PROJECT/NAME/webcam.mp4")
    p.add_argument("--max-frames", type=int, help="stop after this many frames (default: until the source ends or q)")
    p.add_argument("--screenshot", action="store_true", help="also save the last rendered frame as "
                   "PROJECT/NAME/last_frame.png")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    add_device(p)
    add_precision(p)
    add_stream(p)
    add_compile(p)
    add_output(p, "webcam")

def run_webcam(args) -> None:
    from spikeyolo.atomic import check_output_file
    from spikeyolo.demo import LiveDemo

    demo = LiveDemo(args.source, args.weights, args.timesteps, args.events, args.side_by_side, args.conf,
                    device=args.device, precision=args.precision, stream=stream_policy(args), compile=args.compile)
    if not (args.headless or args.save or args.screenshot):
        summary = demo.run(False, None, args.max_frames, None)
    else:
        with run_folder(args) as folder:
            video = folder / "webcam.mp4" if args.headless or args.save else None
            for output in (video, folder / "last_frame.png" if args.screenshot else None):
                if output is not None:
                    check_output_file(output, "--project")  # before the video is processed
            if args.headless:  # nothing on screen: a bar says how far it is
                from tqdm import tqdm

                known = [n for n in (len(demo.source) if hasattr(demo.source, "__len__") else 0, args.max_frames) if n]
                total = min(known) if known else None  # a camera runs until stopped
                with tqdm(total=total, desc="webcam (headless)", unit="frame") as bar:
                    summary = demo.run(True, video, args.max_frames, folder / "last_frame.png" if args.screenshot
                                       else None, on_frame=bar.update)
            else:
                summary = demo.run(False, video, args.max_frames,
                                   folder / "last_frame.png" if args.screenshot else None)
    saved = f", saved {summary.output}" if summary.output else ""
    print(f"{summary.frames} frame(s) at {summary.fps:.1f} FPS, T={summary.timesteps}{saved}")
