"""What streaming costs and gains: detections of a stream (membranes carried from frame to frame) against the
per-frame run that starts every frame from reset membranes at T = 4 (the default), on a video or an event recording.

    python benchmarks/stream_agreement.py demo/bccd_pan.mp4
    python benchmarks/stream_agreement.py demo/bccd_events.aedat4 --events

For each configuration: the agreement with the reference per frame (F1 of detections matched at IoU >= 0.5 with
the same class, averaged over frames), detections per frame, the model's milliseconds per frame, and the steps to
the first detection of the first frame (how soon a fresh stream says something). Prints a markdown table and writes
--json if asked.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from spikeyolo.detect.predictor import Detector, StreamPolicy
from spikeyolo.detect.sources import open_source

CONFIGS = [  # (label, steps per frame, stream policy or None, burst)
    ("per frame, T = 4 (reference)", 4, None, None),
    ("stream, 4 steps a frame, never reset", 4, StreamPolicy(), None),
    ("stream, 4 steps a frame, reset every 8", 4, StreamPolicy(reset_every=8), None),
    ("stream, 1 step a frame, never reset", 1, StreamPolicy(), None),
    ("stream, 1 step a frame, reset every 4", 1, StreamPolicy(reset_every=4), None),
    ("per frame, T = 4, binary", 4, None, 1),
    ("stream, 1 step a frame, never reset, binary", 1, StreamPolicy(), 1),
    ("stream, 2 steps a frame, never reset, binary", 2, StreamPolicy(), 1),
]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    top_left, bottom_right = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), 2)
    area = lambda boxes: np.prod(boxes[:, 2:] - boxes[:, :2], 1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def f1(found, reference) -> float:
    """Greedy matching by score, IoU >= 0.5, same class; 1.0 when both are empty."""
    if not len(found.scores) and not len(reference.scores):
        return 1.0
    overlaps = iou(found.boxes, reference.boxes) if len(found.scores) and len(reference.scores) else np.zeros((0, 0))
    matched, taken = 0, set()
    for i in np.argsort(-found.scores):
        candidates = [j for j in range(len(reference.scores)) if j not in taken and overlaps[i, j] >= 0.5
                      and reference.classes[j] == found.classes[i]]
        if candidates:
            taken.add(max(candidates, key=lambda j: overlaps[i, j]))
            matched += 1
    return 2 * matched / (len(found.scores) + len(reference.scores))


def run(source: str, steps: int, stream, burst, events: bool):
    detector = Detector(None, steps, burst=burst, events=events, stream=stream, device="cpu")
    frames = open_source(source, detector.event_input)
    detector.warmup()
    found, first = [], None
    for frame in frames:
        if first is None:  # the first frame after every step: how soon the network reports anything
            first = next((t + 1 for t, d in enumerate(detector.steps([frame.image])[0]) if len(d.scores)), None)
            detector.warmup()  # fresh again: the stream starts with the frame below
        found.append(detector([frame.image])[0])
    return found, detector.timer.per_frame_ms().get("model", 0.0), first, detector.resets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--events", action="store_true", help="the shipped event model (event recordings)")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows, reference, start = [], {}, time.perf_counter()
    for label, steps, stream, burst in CONFIGS:
        found, model_ms, first, resets = run(args.source, steps, stream, burst, args.events)
        reference.setdefault(burst, found) if stream is None else None
        base = reference[burst]
        agreement = float(np.mean([f1(a, b) for a, b in zip(found, base)]))
        rows.append({"config": label, "steps_per_frame": steps, "burst": burst or "L", "frames": len(found),
                     "resets": resets, "agreement_f1": agreement,
                     "detections_per_frame": float(np.mean([len(d.scores) for d in found])),
                     "model_ms_per_frame": model_ms, "steps_to_first_detection": first})
    print("| configuration | steps/frame | resets | F1 vs per-frame (same neurons) | detections/frame | model ms/frame "
          "| steps to first detection |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['config']} | {r['steps_per_frame']} | {r['resets']} | {r['agreement_f1']:.3f} | "
              f"{r['detections_per_frame']:.1f} | {r['model_ms_per_frame']:.1f} | {r['steps_to_first_detection']} |")
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
