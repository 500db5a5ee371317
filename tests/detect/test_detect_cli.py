"""spikeyolo detect through the CLI: outputs, and one clear error per bad input with nothing half-written."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.cli import main
from spikeyolo.detect.predictor import BCCD_WEIGHTS
from tests.eval.test_val_cli import live_model_two_classes


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_detector(live_model_two_classes(), tmp_path_factory.mktemp("w") / "m.safetensors", imgsz=64)


def _video(path, frames=12, fourcc="MJPG"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (96, 64))
    for i in range(frames):
        writer.write(np.full((64, 96, 3), (i * 20) % 255, np.uint8))
    writer.release()
    return path


def run(args, weights, out):
    return main(["detect", *map(str, args), "--weights", str(weights), "--project", str(out)])


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_images_of_every_kind(weights, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "gray.png"), rng.integers(0, 255, (50, 70), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgba.png"), rng.integers(0, 255, (50, 70, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65535, (50, 70, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "plain.jpg"), rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert run([folder, "--timesteps", "2"], weights, tmp_path / "out") == 0
    out = tmp_path / "out" / "exp"
    assert sorted(p.name for p in out.glob("*.*g")) == ["deep.png", "gray.png", "plain.jpg", "rgba.png"]  # own format
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(line["timesteps"] == 2 and line["mode"] == "SNN T=2 burst≤4" for line in lines)
    assert run([folder / "*.png", "--ann", "--precision", "bf16"], weights, tmp_path / "out") == 0  # a glob
    ann_lines = (tmp_path / "out" / "exp2" / "predictions.jsonl").read_text().splitlines()  # a new run folder
    assert (out / "predictions.jsonl").is_file() and json.loads(ann_lines[0])["mode"] == "ANN bf16"
    assert run([folder / "plain.jpg", "--burst", "1", "--snm", "--precision", "bf16"], weights, tmp_path / "out") == 0
    line = json.loads((tmp_path / "out" / "exp3" / "predictions.jsonl").read_text())
    assert line["mode"] == "SNN T=4 SNM bf16"


def test_video_in_video_out(weights, tmp_path):
    source = _video(tmp_path / "clip.avi")
    assert run([source], weights, tmp_path / "out") == 0
    video = tmp_path / "out/exp/clip.mp4"
    capture = cv2.VideoCapture(str(video))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 12
    lines = (tmp_path / "out/exp/predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(12))


def test_truncated_video_keeps_frames_read(weights, tmp_path, capsys):
    data = _video(tmp_path / "full.avi", frames=30).read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    assert run([tmp_path / "cut.avi"], weights, tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "broke off early" in out and "burst≤4 (IF, bursts of up to 4 spikes):" in out  # the neurons that ran
    lines = (tmp_path / "out/exp/predictions.jsonl").read_text().splitlines()
    capture = cv2.VideoCapture(str(tmp_path / "out/exp/cut.mp4"))
    assert 0 < len(lines) < 30 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == len(lines)  # finalized, playable


@pytest.mark.parametrize("case,expected", [
    ("missing", "not found"), ("extension", "unsupported extension"), ("empty", "holds no images"),
    ("truncated_image", "cannot read image"), ("corrupt_mp4", "cannot open video"), ("camera", "cannot open camera"),
    ("timesteps", "--timesteps must be in [1, 4096], got 0"), ("conf", "--conf must be in [0.0, 1.0], got 1.5"),
    ("every_step_ann", "does not go with --ann"), ("camera_index", "camera index 99999999999999999999 is out of range"),
    ("fifo", "is not a regular file"), ("fifo_video", "is not a regular file"),
    ("weights_format", "not a readable safetensors"), ("weights_nan", "non-finite"), ("weights_pt", "spikeyolo import"),
])
def test_bad_input_is_one_clear_line(case, expected, weights, tmp_path, capsys):
    source, extra, use = tmp_path / "x.jpg", [], weights
    cv2.imwrite(str(source), np.zeros((40, 40, 3), np.uint8))
    if case == "missing":
        source = tmp_path / "nope.jpg"
    elif case == "extension":
        source = tmp_path / "notes.txt"
        source.write_text("hello")
    elif case == "empty":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "truncated_image":
        source = tmp_path / "t.jpg"
        source.write_bytes(cv2.imencode(".jpg", np.zeros((40, 40, 3), np.uint8))[1].tobytes()[:20])
    elif case == "corrupt_mp4":
        data = _video(tmp_path / "v.mp4", fourcc="mp4v").read_bytes()
        source = tmp_path / "v.mp4"
        source.write_bytes(data[: len(data) // 2])
    elif case == "camera":
        source = "9"
    elif case == "camera_index":
        source = "99999999999999999999"
    elif case in ("fifo", "fifo_video"):  # reading a pipe would block forever
        source = tmp_path / ("pipe.jpg" if case == "fifo" else "pipe.mp4")
        os.mkfifo(source)
    elif case == "timesteps":
        extra = ["--timesteps", "0"]
    elif case == "conf":
        extra = ["--conf", "1.5"]
    elif case == "every_step_ann":
        extra = ["--every-step", "--ann"]
    elif case == "weights_format":
        use = tmp_path / "w.safetensors"
        use.write_bytes(b"garbage")
    elif case == "weights_nan":
        model = live_model_two_classes()
        model.model[1].conv.weight.data[0, 0, 0, 0] = float("nan")
        use = save_detector(model, tmp_path / "nan.safetensors")
    elif case == "weights_pt":
        use = tmp_path / "user.pt"
        torch.save({"x": 1}, use)
    out = tmp_path / "out"
    assert run([source, *extra], use, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert _files(out) == []  # no half-written output


def test_a_pipe_inside_a_folder_is_left_out_with_a_warning(weights, tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.zeros((40, 40, 3), np.uint8))
    os.mkfifo(folder / "b.jpg")
    assert run([folder], weights, tmp_path / "out") == 0
    assert "not regular files left out" in caplog.text and "b.jpg" in caplog.text
    assert len((next((tmp_path / "out").iterdir()) / "predictions.jsonl").read_text().splitlines()) == 1


@pytest.mark.skipif(not BCCD_WEIGHTS.is_file(), reason="shipped weights not present")
def test_detections_at_every_step_equal_separate_runs(tmp_path):
    """--every-step: one run to T gives, at each t, exactly what a separate run to t detects."""
    from tests.conftest import ROOT

    capture = cv2.VideoCapture(str(ROOT / "demo/bccd_pan.mp4"))
    frame = capture.read()[1]
    cv2.imwrite(str(tmp_path / "cells.png"), frame)
    args = ["detect", str(tmp_path / "cells.png"), "--weights", str(BCCD_WEIGHTS), "--burst", "1", "--timesteps", "4",
            "--every-step"]
    assert main([*args, "--project", str(tmp_path / "out")]) == 0
    line = json.loads((tmp_path / "out/exp/predictions.jsonl").read_text())
    assert [step["t"] for step in line["steps"]] == [1, 2, 3, 4]
    assert line["steps"][-1]["detections"] == line["detections"]
    counts = [len(step["detections"]) for step in line["steps"]]
    assert len(set(counts)) > 1, counts  # binary neurons at few steps: the detections change with t
    for step in line["steps"]:
        alone = ["detect", str(tmp_path / "cells.png"), "--weights", str(BCCD_WEIGHTS), "--burst", "1", "--timesteps",
                 str(step["t"])]
        assert main([*alone, "--project", str(tmp_path / f"t{step['t']}")]) == 0
        separate = json.loads((tmp_path / f"t{step['t']}/exp/predictions.jsonl").read_text())
        assert separate["detections"] == step["detections"], step["t"]


@pytest.mark.skipif(not BCCD_WEIGHTS.is_file(), reason="shipped weights not present")
def test_readme_demo_command_with_shipped_weights(tmp_path):
    from tests.conftest import ROOT

    assert main(["detect", str(ROOT / "demo/bccd_pan.mp4"), "--weights", str(BCCD_WEIGHTS), "--project",
                 str(tmp_path)]) == 0
    lines = (tmp_path / "exp/predictions.jsonl").read_text().splitlines()
    assert len(lines) == 48 and sum(len(json.loads(line)["detections"]) for line in lines) > 48
    assert cv2.VideoCapture(str(tmp_path / "exp/bccd_pan.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 48


def test_stream_url(weights, tmp_path):
    """An http:// stream, served from this machine (loopback only)."""
    import functools
    import http.server
    import socketserver
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    _video(tmp_path / "clip.mp4", frames=10, fourcc="mp4v")
    handler = functools.partial(Quiet, directory=str(tmp_path))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        try:
            assert run([url, "--timesteps", "1"], weights, tmp_path / "out") == 0
        finally:
            server.shutdown()
    lines = (tmp_path / "out/exp/predictions.jsonl").read_text().splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["source"] == url
    assert (tmp_path / "out/exp/clip.mp4").is_file()


def test_batched_folders_warm_up_and_stage_times(weights, tmp_path, capsys):
    """Frames in batches give the same outputs, in order, as one at a time; the summary times every stage after an
    untimed warm-up (whose frame is in no output)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))
    assert run([folder, "--timesteps", "2", "--batch", "3"], weights, tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "5 frame(s)" in out and "after an untimed warm-up" in out
    stages = out.split("per frame: ")[1].splitlines()[0]
    assert all(f"{stage} " in stages for stage in ("read", "preprocess", "model", "nms", "draw", "write"))
    assert run([folder, "--timesteps", "2"], weights, tmp_path / "out") == 0
    batched, single = ([json.loads(line) for line in (tmp_path / "out" / run_dir / "predictions.jsonl").open()]
                       for run_dir in ("exp", "exp2"))
    assert [line["source"] for line in batched] == [line["source"] for line in single] and len(batched) == 5


def test_a_missing_camera_is_one_line_even_from_opencvs_own_log(weights, tmp_path):
    """OpenCV's C++ backends print [ WARN]/[ERROR] lines straight to the process's stderr when a camera is not
    there (capsys cannot see them): the whole stderr of the process is our one line."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "spikeyolo.cli", "detect", "7", "--weights", str(weights),
                           "--project", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "spikeyolo detect: error: cannot open camera 7: check that it is connected and not in use by another program"]


def test_a_run_of_thousands_of_steps_shows_its_steps(weights, tmp_path, capsys):
    """T from 256 up: one frame takes minutes at T = 4096, so the steps get a bar; short runs stay quiet."""
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    assert run([image, "--timesteps", "300", "--every-step"], weights, tmp_path / "long") == 0
    assert "SNN, T=300" in capsys.readouterr().err
    assert run([image, "--timesteps", "8"], weights, tmp_path / "short") == 0
    assert "SNN, T=" not in capsys.readouterr().err
