"""A long stream that holds: detection over a looped video, resident memory sampled as it goes.

    python benchmarks/soak.py demo/bccd_pan.mp4 --frames 20000 --stream --timesteps 1 --out runs/soak/stream
    python benchmarks/soak.py demo/bccd_pan.mp4 --frames 10000 --webcam --out runs/soak/webcam

With --webcam the frames go through `spikeyolo webcam --headless` instead (LiveDemo: the panel with boxes, FPS and
every layer's firing rate, rendered into webcam.mp4), the looped video standing in for the camera.

Frames of the video are repeated in order (a camera that never stops), each detected, drawn and written as
`spikeyolo detect` does (DetectionWriter: an mp4 and predictions.jsonl, finalized atomically at the end). Every
--every frames the process's resident set (RSS) is recorded. Writes rss.json (frames, MB, seconds) and rss.png
(RSS over frames) into --out, and prints the growth after warm-up (the first 1,000 frames), the frames written and
the JSON lines read back. Not a timed test: a benchmark to run by hand (about 15 minutes for 20,000 frames of the
stream at one step a frame on a 2-core CPU).
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import torch

from spikeyolo.detect.predictor import Detector, StreamPolicy
from spikeyolo.detect.writers import DetectionWriter
from spikeyolo.ultra import draw_detections


def looped_frames(video: str):
    capture = cv2.VideoCapture(video)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"no frame could be read from {video}")
    return itertools.cycle(frames)


def soak(video: str, count: int, detector: Detector, out: Path, every: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    writer = DetectionWriter(out, 30.0, "soak.mp4")
    process, samples, start = psutil.Process(), [], time.perf_counter()
    detector.warmup()
    for index, image in enumerate(itertools.islice(looped_frames(video), count)):
        found = detector([image])[0]
        rows = torch.from_numpy(np.concatenate([found.boxes, found.scores[:, None], found.classes[:, None]], 1)).float()
        writer.write(draw_detections(image, rows, detector.names, "frame"), found, detector.names, "loop", index,
                     detector.mode, detector.timesteps)
        if index % every == 0 or index == count - 1:
            samples.append((index + 1, process.memory_info().rss / 2**20, time.perf_counter() - start))
    outputs = writer.close()
    lines = sum(1 for _ in open(out / "predictions.jsonl"))
    capture = cv2.VideoCapture(str(out / "soak.mp4"))
    video_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    after_warmup = [mb for frames, mb, _ in samples if frames >= 1000]
    return {"mode": detector.mode, "frames": count, "jsonl_lines": lines, "video_frames": video_frames,
            "samples": samples, "seconds": time.perf_counter() - start, "resets": detector.resets,
            "rss_growth_after_warmup_mb": (max(after_warmup) - after_warmup[0]) if after_warmup else None,
            "outputs": [str(p) for p in outputs]}


def soak_webcam(video: str, count: int, timesteps: int, stream, out: Path, every: int) -> dict:
    """The live demo, headless, on ``count`` frames of the looped video; RSS sampled from its per-frame callback."""
    from spikeyolo.demo import LiveDemo
    from spikeyolo.detect.sources import Frame

    out.mkdir(parents=True, exist_ok=True)
    demo = LiveDemo(video, None, timesteps, device="cpu", stream=stream)
    demo.source = (Frame(image, "loop", index) for index, image in enumerate(looped_frames(video)))
    process, samples, start, done = psutil.Process(), [], time.perf_counter(), [0]

    def sample():
        done[0] += 1
        if done[0] % every == 0 or done[0] == count:
            samples.append((done[0], process.memory_info().rss / 2**20, time.perf_counter() - start))

    summary = demo.run(True, out / "webcam.mp4", count, on_frame=sample)
    capture = cv2.VideoCapture(str(out / "webcam.mp4"))
    video_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    after_warmup = [mb for frames, mb, _ in samples if frames >= 1000]
    return {"mode": f"webcam --headless, {demo.snn.mode}", "frames": summary.frames, "jsonl_lines": None,
            "video_frames": video_frames, "samples": samples, "seconds": summary.seconds, "resets": demo.snn.resets,
            "rss_growth_after_warmup_mb": (max(after_warmup) - after_warmup[0]) if after_warmup else None,
            "outputs": [str(out / "webcam.mp4")]}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames, mb, _ = zip(*report["samples"])
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(frames, mb)
    axis.set_xlabel("frames")
    axis.set_ylabel("resident memory (MB)")
    axis.set_title(report["mode"])
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--reset-every", type=int, default=0)
    parser.add_argument("--every", type=int, default=250, help="frames between memory samples")
    parser.add_argument("--webcam", action="store_true", help="through the live demo, headless")
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    args = parser.parse_args()
    stream = StreamPolicy(args.reset_every) if args.stream else None
    if args.webcam:
        report = soak_webcam(args.video, args.frames, args.timesteps, stream, args.out, args.every)
    else:
        detector = Detector(None, args.timesteps, device="cpu", stream=stream)
        report = soak(args.video, args.frames, detector, args.out, args.every)
    (args.out / "rss.json").write_text(json.dumps(report, indent=1))
    plot(report, args.out / "rss.png")
    growth = report["rss_growth_after_warmup_mb"]
    print(f"{report['mode']}: {report['frames']} frames in {report['seconds']:.0f} s, {report['video_frames']} in the "
          f"video, {report['jsonl_lines'] if report['jsonl_lines'] is not None else 'no'} JSON lines, "
          f"{report['resets']} reset(s); RSS growth after 1,000 frames "
          f"{'n/a (fewer frames)' if growth is None else f'{growth:.1f}'} MB (first {report['samples'][0][1]:.0f} MB, last "
          f"{report['samples'][-1][1]:.0f} MB)")


if __name__ == "__main__":
    main()
