"""A YOLOv5 checkpoint's anchor head as the teacher of an anchor-free student (spikeyolo.quantize.anchor_teacher)."""
import pytest
import torch

from spikeyolo.checkpoint import CheckpointError
from spikeyolo.quantize.anchor_teacher import AnchorHeadTeacher, box_side_logits
from tests.conftest import SHARED

YOLOV5N = SHARED.parent / "weights" / "yolov5n-v6.1-coco.pt"
OI5 = SHARED / "oi5"
needs_yolov5n = pytest.mark.skipif(not (YOLOV5N.is_file() and OI5.is_dir()), reason="../shared not present")


def test_box_sides_become_distributions_whose_mean_is_the_distance():
    distances = torch.tensor([[0.0, 0.25, 3.7, 9.5], [14.99, 2.0, 0.5, 30.0]])
    bins = torch.arange(16.0)
    mean = (box_side_logits(distances, 16).softmax(-1) * bins).sum(-1)
    assert torch.allclose(mean, distances.clamp(max=15 - 1e-3), atol=2e-3)  # beyond the last bin: clamped
    two_hot = box_side_logits(distances, 16).softmax(-1)
    assert ((two_hot > 1e-3).sum(-1) <= 2).all()  # the mass sits on the two bins either side


@needs_yolov5n
def test_the_teacher_finds_the_labelled_bird_in_a_real_photo():
    """oi5 val a57053e685cd731b.jpg (640 × 479): one Bird, COCO box [193.4, 86.6, 207.8, 314.7] (x, y, w, h). The
    checkpoint's 80 COCO classes narrowed to oi5's five; the most Bird-like anchor, decoded as the anchor-free
    student decodes its own outputs, must cover the labelled bird (wrong geometry or class columns would not)."""
    import cv2

    from spikeyolo.ultra import letterbox_batch

    names = ["Apple", "Bicycle", "Bird", "Boat", "Person"]
    teacher = AnchorHeadTeacher(YOLOV5N, names).eval()
    image = cv2.imread(str(OI5 / "val2017" / "a57053e685cd731b.jpg"))
    assert image.shape[:2] == (479, 640)
    with torch.no_grad():
        raw = teacher(letterbox_batch([image], 320))
        decoded = teacher.decode(raw)
    assert decoded.shape[1] == 4 + 5 and raw["boxes"].shape[1] == 4 * 16
    assert raw["scores"].shape[2] == decoded.shape[2] == 40 * 40 + 20 * 20 + 10 * 10
    best = decoded[0, 4 + 2].argmax()
    assert decoded[0, 4:, best].argmax() == 2 and decoded[0, 4 + 2, best] > 0.5  # a confident Bird
    cx, cy, w, h = decoded[0, :4, best].tolist()
    scale, pad = 0.5, (320 - round(479 * 0.5)) / 2  # letterboxed: halved, 40 px above
    x, y, bw, bh = 193.44 * scale, 86.56 * scale + pad, 207.81 * scale, 314.69 * scale
    overlap = max(0, min(cx + w / 2, x + bw) - max(cx - w / 2, x)) * max(0, min(cy + h / 2, y + bh) - max(cy - h / 2, y))
    assert overlap / (w * h + bw * bh - overlap) > 0.6


@needs_yolov5n
def test_classes_the_checkpoint_does_not_know_are_refused_in_one_line():
    with pytest.raises(CheckpointError, match=r"does not detect \['Unicorn'\]") as err:
        AnchorHeadTeacher(YOLOV5N, ["Person", "Unicorn"])
    assert "\n" not in str(err.value)


@needs_yolov5n
def test_cli_refuses_a_teacher_without_the_data_classes(voc_dataset, tmp_path, capsys):
    from spikeyolo.cli import main

    assert main(["train", "--data", str(voc_dataset), "--model", "yolov5n-relu", "--teacher", str(YOLOV5N),
                 "--epochs", "1", "--imgsz", "64", "--batch", "4", "--project", str(tmp_path), "--name", "t"]) == 2
    err = capsys.readouterr().err
    assert "does not detect ['bar', 'square']" in err and len(err.strip().splitlines()) == 1


@needs_yolov5n
def test_decoded_boxes_are_yolov5s_own_decode_of_each_cells_best_anchor():
    """YOLOv5 v6.x decodes anchor a at cell (i, j) of stride s as xy = (2σ − 0.5 + (j, i))·s, wh = (2σ)²·anchor_a·s;
    the teacher hands on the best anchor's box as four side distances, which the student's decode must turn back
    into the same box (wherever the sides lie within the student's 16 bins)."""
    names = ["Bird", "Person"]
    teacher = AnchorHeadTeacher(YOLOV5N, names).eval()
    images = torch.rand(1, 3, 128, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        raw = teacher(images)
        decoded = teacher.decode(raw)
        expected, scores = [], []
        for level, (x, stride) in enumerate(zip(teacher.features(images), teacher.stride.tolist())):
            y = teacher.convs[level](x).sigmoid()
            _, _, height, width = y.shape
            y = y.view(3, -1, height, width)
            probability = y[:, 4:5] * y[:, [5 + 14, 5 + 0]]  # [3, 2, H, W]; COCO: bird 14, person 0
            best = probability.amax(1).argmax(0)  # [H, W]
            gy, gx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            sig = y[best, :4, gy, gx]  # [H, W, 4]
            xy = (sig[..., :2] * 2 - 0.5 + torch.stack((gx, gy), -1)) * stride
            wh = (sig[..., 2:] * 2) ** 2 * teacher.anchors[level][best] * stride
            expected.append(torch.cat((xy, wh), -1).flatten(0, 1))
            scores.append(probability.amax(0).flatten(1).T)
    expected, scores = torch.cat(expected), torch.cat(scores)
    assert torch.allclose(decoded[0, 4:].T, scores, atol=1e-5)
    strides = torch.cat([torch.full((f.shape[2] * f.shape[3],), s) for f, s in zip(raw["feats"], teacher.stride.tolist())])
    centres = decoded[0, :2].T
    inside = ((expected[:, 2:] / 2 + (expected[:, :2] - centres).abs()) / strides[:, None] < 14.5).all(1)
    inside &= ((expected[:, 2:] / 2 - (expected[:, :2] - centres).abs()) >= 0).all(1)  # the cell's point within
    assert inside.float().mean() > 0.5
    assert torch.allclose(decoded[0, :4].T[inside], expected[inside], atol=0.02 * 32)


@needs_yolov5n
@pytest.mark.parametrize("damage", ["anchors", "missing bias", "outputs", "widths"])
def test_a_damaged_anchor_head_is_one_line_not_a_traceback(monkeypatch, damage):
    """The checkpoint is a stranger's: its head tensors are checked before any shape is trusted."""
    import spikeyolo.quantize.anchor_teacher as anchor_teacher

    real = anchor_teacher.read_pickled_checkpoint

    def damaged(path):
        checkpoint = real(path)
        state = checkpoint.state
        if damage == "anchors":
            state["model.24.anchors"] = torch.ones(3, 4, 2)
        elif damage == "missing bias":
            del state["model.24.m.1.bias"]
        elif damage == "outputs":
            state["model.24.m.2.weight"] = torch.ones(250, *state["model.24.m.2.weight"].shape[1:])
        else:
            state["model.24.m.0.weight"] = torch.ones(255, 7, 1, 1)
        return checkpoint

    monkeypatch.setattr(anchor_teacher, "read_pickled_checkpoint", damaged)
    with pytest.raises(CheckpointError) as err:
        AnchorHeadTeacher(YOLOV5N, ["Person"])
    assert "\n" not in str(err.value) and ("anchor head" in str(err.value))


@needs_yolov5n
def test_the_teacher_file_is_read_once(monkeypatch):
    from spikeyolo import importing, pickled
    from spikeyolo.quantize import anchor_teacher
    from spikeyolo.quantize.trainer import TeacherSettings

    reads = []

    def counted(path):
        reads.append(path)
        return pickled.read_pickled_checkpoint(path)

    monkeypatch.setattr(anchor_teacher, "read_pickled_checkpoint", counted)
    monkeypatch.setattr(importing, "read_pickled_checkpoint", counted)
    settings = TeacherSettings(str(YOLOV5N))  # checked here, before any work
    teacher = settings.load(["bird", "person"], 16)
    assert isinstance(teacher, AnchorHeadTeacher) and len(reads) == 1
