"""Labelled event data from still images, the way N-Caltech101 was recorded.

A simulated sensor looks at each image while it makes three small saccades along a triangle
(N-Caltech101 moved a real ATIS sensor this way in front of a monitor). The events of each saccade
become one sample: its event frame, with the image's boxes moved to where the image was half-way
through the saccade. Held-out images also keep their full recording as an event file.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from spikeyolo.data.voc import read_voc, voc_class_names, voc_split_ids
from spikeyolo.events.io import write_events
from spikeyolo.events.represent import event_frame
from spikeyolo.events.simulate import EventSimulator
from spikeyolo.events.stream import Events

TRIANGLE = np.array([(0.0, 0.0), (0.5, 1.0), (1.0, 0.0), (0.0, 0.0)])  # saccade end points, × amplitude


@dataclass
class SaccadeConfig:
    """How the simulated sensor moves and sees (sizes in sensor pixels, times in µs)."""
    sensor: tuple[int, int] = (320, 240)
    amplitude: float = 6.0
    saccade_us: int = 100_000
    frame_us: int = 1_000
    threshold: float = 0.12
    threshold_sigma: float = 0.02
    refractory_us: int = 1_000
    clip: int = 4


def offset_at(time_us: float, config: SaccadeConfig) -> np.ndarray:
    """The image's (dx, dy) shift on the sensor at a time: eased motion between the triangle's corners."""
    leg = min(int(time_us // config.saccade_us), len(TRIANGLE) - 2)
    phase = np.clip(time_us / config.saccade_us - leg, 0.0, 1.0)
    ease = 0.5 - 0.5 * np.cos(np.pi * phase)
    return config.amplitude * (TRIANGLE[leg] + ease * (TRIANGLE[leg + 1] - TRIANGLE[leg]))


def record_saccades(image: np.ndarray, config: SaccadeConfig, seed: int = 0) -> Events:
    """Events of the sensor's three saccades over one BGR image (resized to the sensor)."""
    width, height = config.sensor
    base = cv2.cvtColor(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    simulator = EventSimulator(width, height, config.threshold, config.threshold, config.threshold_sigma,
                               config.refractory_us, seed)
    parts = []
    for time_us in range(0, 3 * config.saccade_us + 1, config.frame_us):
        dx, dy = offset_at(time_us, config)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        frame = cv2.warpAffine(base, shift, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        parts.append(simulator(frame, time_us))
    return Events.concat(parts, width, height)


def saccade_boxes(boxes: list, scale: tuple[float, float], time_us: float, config: SaccadeConfig) -> list:
    """Image boxes (cls, x1, y1, x2, y2) on the sensor at a time; boxes left with no area are dropped."""
    dx, dy = offset_at(time_us, config)
    width, height = config.sensor
    moved = []
    for cls, x1, y1, x2, y2 in boxes:
        x1, x2 = np.clip([x1 * scale[0] + dx, x2 * scale[0] + dx], 0, width)
        y1, y2 = np.clip([y1 * scale[1] + dy, y2 * scale[1] + dy], 0, height)
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            moved.append((cls, float(x1), float(y1), float(x2), float(y2)))
    return moved


def _write_voc_xml(path: Path, filename: str, size: tuple[int, int], boxes: list, names: list[str]) -> None:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    dims = ET.SubElement(root, "size")
    for key, value in zip(("width", "height", "depth"), (*size, 3)):
        ET.SubElement(dims, key).text = str(value)
    for cls, x1, y1, x2, y2 in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[cls]
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (x1, y1, x2, y2)):
            ET.SubElement(box, key).text = f"{value:.1f}"
    ET.ElementTree(root).write(path)


def build_event_dataset(voc_root: str | Path, out: str | Path, splits: tuple[str, ...] = ("trainval", "test"),
                        keep_recordings: tuple[str, ...] = ("test",), config: SaccadeConfig | None = None) -> Path:
    """Write a VOC-layout event dataset (event frames + moved boxes) for each split of a VOC dataset."""
    voc_root, out, config = Path(voc_root), Path(out), config or SaccadeConfig()
    names = voc_class_names(voc_root, [i for s in splits for i in voc_split_ids(voc_root, s)])
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main", "recordings"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for split in splits:
        records, _ = read_voc(voc_root, split, names)
        ids = []
        for index, record in enumerate(records):
            image = cv2.imread(str(record.path))
            events = record_saccades(image, config, seed=index)
            scale = (config.sensor[0] / record.width, config.sensor[1] / record.height)
            for leg in range(3):
                start = leg * config.saccade_us
                sample = f"{record.image_id}_s{leg}"
                cv2.imwrite(str(out / "JPEGImages" / f"{sample}.png"),
                            event_frame(events.between(start, start + config.saccade_us), config.clip))
                boxes = saccade_boxes(record.boxes, scale, start + config.saccade_us / 2, config)
                _write_voc_xml(out / "Annotations" / f"{sample}.xml", f"{sample}.png", config.sensor, boxes, names)
                ids.append(sample)
            if split in keep_recordings:
                write_events(out / "recordings" / f"{record.image_id}.h5", events)
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (out / "events.json").write_text(json.dumps({"source": str(voc_root), "names": names,
                                                 "config": config.__dict__}, indent=2))
    return out
