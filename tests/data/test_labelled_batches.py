"""Labels moved with the letterbox (tune --label-gain): a box's label covers the pixels drawn in it, on wide and
tall images, flipped or not; ultralytics' detection loss of raw head outputs equals its trainer's criterion."""
import numpy as np
import pytest
import torch
from PIL import Image

from spikeyolo.data import yolo
from spikeyolo.data.images import flip_labels, labelled_batches
from spikeyolo.data.records import DatasetError
from spikeyolo.ultra import DEFAULT_CFG, LabelsLoss, build_detection_model
from tests.conftest import ROOT

RED, BLUE = (255, 0, 0), (0, 0, 255)
IMGSZ = 64


def _image(folder, name, height, width, boxes):
    """An image of coloured boxes (pixel x1 y1 x2 y2, class 0 red, 1 blue) and its YOLO label file."""
    pixels = np.zeros((height, width, 3), np.uint8)
    lines = []
    for cls, (x1, y1, x2, y2) in boxes:
        pixels[y1:y2, x1:x2] = RED if cls == 0 else BLUE
        lines.append(f"{cls} {(x1 + x2) / 2 / width} {(y1 + y2) / 2 / height} {(x2 - x1) / width} "
                     f"{(y2 - y1) / height}")
    (folder / "images").mkdir(exist_ok=True)
    (folder / "labels").mkdir(exist_ok=True)
    Image.fromarray(pixels).save(folder / "images" / name)
    if lines:
        (folder / "labels" / name).with_suffix(".txt").write_text("\n".join(lines) + "\n")
    return folder / "images" / name


def _drawn_box(image: torch.Tensor, channel: int) -> np.ndarray:
    """Pixel x1 y1 x2 y2 of where ``channel`` (0 red, 2 blue) is bright and the others dark, in a [3, H, W] image."""
    others = [c for c in range(3) if c != channel]
    mask = (image[channel] > 0.5) & (image[others].amax(0) < 0.5)
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def _label_box(xywh: torch.Tensor) -> np.ndarray:
    cx, cy, w, h = (xywh * IMGSZ).tolist()
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def test_labels_follow_the_letterbox_and_the_flip(tmp_path):
    files = [_image(tmp_path, "wide.png", 90, 200, [(0, (20, 10, 80, 50)), (1, (150, 40, 190, 85))]),
             _image(tmp_path, "tall.png", 160, 70, [(1, (5, 100, 40, 150))]),
             _image(tmp_path, "empty.png", 50, 50, [])]
    (images, targets), = list(labelled_batches(files, IMGSZ, classes=2, batch=3))
    assert images.shape == (3, 3, IMGSZ, IMGSZ)
    assert targets["batch_idx"].tolist() == [0, 0, 1] and targets["cls"].tolist() == [0, 1, 1]
    for flipped in (False, True):
        pictures, labels = (images.flip(-1), flip_labels(targets)) if flipped else (images, targets)
        for index, cls, box in zip(labels["batch_idx"].long(), labels["cls"].long(), labels["bboxes"]):
            drawn = _drawn_box(pictures[index], 0 if cls == 0 else 2)
            assert np.abs(drawn - _label_box(box)).max() <= 1.0, (flipped, index, drawn, _label_box(box))
    assert torch.equal(flip_labels(flip_labels(targets))["bboxes"], targets["bboxes"])


def test_labels_loss_is_ultralytics_training_loss_per_image():
    torch.manual_seed(0)
    model = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=2)
    model.args = DEFAULT_CFG
    images = torch.rand(2, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))
    targets = {"batch_idx": torch.tensor([0.0, 0.0, 1.0]), "cls": torch.tensor([0.0, 1.0, 1.0]),
               "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2], [0.5, 0.5, 0.5, 0.4]])}
    preds = model.train()(images)
    expected = model.init_criterion()(preds, targets)[0].sum() / images.shape[0]
    ours = LabelsLoss(model)({"boxes": preds["boxes"], "scores": preds["scores"]}, targets, IMGSZ)
    assert float(ours.detach()) == pytest.approx(float(expected.detach()), rel=1e-6) and float(ours.detach()) > 0
    with pytest.raises(ValueError, match="anchors"):
        LabelsLoss(model)({"boxes": preds["boxes"], "scores": preds["scores"]}, targets, 2 * IMGSZ)


def test_an_image_with_too_many_objects_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(yolo, "MAX_OBJECTS_PER_IMAGE", 3)  # the detection loss allocates objects × anchors
    crowded = _image(tmp_path, "crowded.png", 64, 64, [(0, (4 * i, 4 * i, 4 * i + 3, 4 * i + 3)) for i in range(4)])
    with pytest.raises(DatasetError, match="crowded.txt: more than 3 objects"):
        next(labelled_batches([crowded], IMGSZ, classes=2))
