"""Options and output paths from strangers: one line on stderr naming the option, exit 2, before any work, and no
file left under a final name; Ctrl-C and SIGTERM leave nothing half-written (exit 130 / 143)."""
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from spikeyolo.cli import main
from tests.conftest import ROOT

WEIGHTS = str(ROOT / "weights/bccd-yolov8n-qcfs.safetensors")
VIDEO = str(ROOT / "demo/bccd_pan.mp4")


def one_line(capsys, *needles) -> str:
    """The one error line (a progress bar may have drawn on stderr before it), without a traceback."""
    text = capsys.readouterr().err
    err = [line for line in text.strip().splitlines() if line.startswith("spikeyolo ")]
    assert len(err) == 1 and "Traceback" not in text, text[-2000:]
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    return err[0]


def leftovers(folder):
    return [p for p in folder.rglob("*") if "tmp" in p.name or p.suffix in (".mp4", ".jsonl", ".json", ".safetensors")]


OPTION_CASES = [
    (["detect", VIDEO, "--imgsz", "-1"], "--imgsz must be in [32, 4096]"),
    (["detect", VIDEO, "--imgsz", "100000"], "--imgsz must be in [32, 4096]"),
    (["detect", VIDEO, "--imgsz", "100"], "multiple of 32"),
    (["detect", VIDEO, "--device", "meta"], "runs on cpu or cuda"),
    (["detect", VIDEO, "--burst", "0"], "--burst must be in [1, 64]"),
    (["detect", VIDEO, "--timesteps", "100000"], "--timesteps must be in [1, 4096]"),
    (["val", "--weights", WEIGHTS, "--data", "x", "--batch", "0"], "--batch must be in [1, 1024]"),
    (["val", "--weights", WEIGHTS, "--data", "x", "--chunk", "-1"], "--chunk must be in [1, 4096]"),
    (["val", "--weights", WEIGHTS, "--data", "x", "--imgsz", "-1"], "--imgsz must be in [32, 4096]"),
    (["val", "--weights", WEIGHTS, "--data", "x", "--percentile", "nan"], "--percentile must be a finite number"),
    (["layers", "--weights", WEIGHTS, "--data", "x", "--images", "0"], "--images must be in [1, 100000]"),
    (["layers", "--weights", WEIGHTS, "--data", "x", "--imgsz", "33"], "multiple of 32"),
    (["convert", WEIGHTS, "--calib-images", "0"], "--calib-images must be in [1, 100000]"),
    (["convert", WEIGHTS, "--initial-membrane", "nan"], "--initial-membrane must be a finite number"),
    (["webcam", "--source", VIDEO, "--conf", "5"], "--conf must be in [0.0, 1.0]"),
    (["train", "--data", "x", "--levels", "1000000000"], "--levels must be in [0, 256]"),
    (["train", "--data", "x", "--threshold", "0"], "--threshold must be in (0.0"),
    (["train", "--data", "x", "--resume"], None),  # argparse: --resume needs a path
    (["train", "--data", "x", "--resume", "nowhere/last.pt"], "--resume nowhere/last.pt not found"),
    (["val", "--weights", WEIGHTS, "--data", "x", "--name", "../../escape"], "must be a plain folder name"),
    (["benchmark", "--imgsz", "0"], None),  # argparse: positive integers
]


@pytest.mark.parametrize("argv,expected", OPTION_CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in OPTION_CASES])
def test_bad_options_are_one_line_before_any_work(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if expected is None:  # argparse's own usage error: exit 2 too
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        return
    assert main(argv) == 2
    one_line(capsys, expected)
    assert not list(tmp_path.rglob("*"))  # nothing created: no run folder, no cache, nothing outside
    assert not (ROOT.parent / "escape").exists()


@pytest.fixture
def readonly(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


def _skip_if_root_can_write(folder):
    probe = folder / "probe"
    try:
        probe.write_text("")
        probe.unlink()
        pytest.skip("running as root: a read-only folder is still writable")
    except OSError:
        pass


@pytest.mark.parametrize("kind", ["read-only", "a-file", "a-folder"])
def test_outputs_that_cannot_be_written_fail_before_the_work(kind, tmp_path, capsys, readonly):
    if kind == "read-only":
        _skip_if_root_can_write(readonly)
        project = readonly / "runs"
    elif kind == "a-file":
        project = tmp_path / "blocker"
        project.write_text("")
    else:
        project = tmp_path / "runs"
        (project / "exp").mkdir(parents=True)
        (project / "exp" / "webcam.mp4").mkdir()  # where the video would go: a folder
    started = time.perf_counter()
    assert main(["webcam", "--source", VIDEO, "--headless", "--project", str(project), "--exist-ok"]) == 2
    one_line(capsys, "--project" if kind != "a-folder" else "webcam.mp4")
    assert time.perf_counter() - started < 20  # refused before processing the video
    if kind != "a-folder":
        for argv in (["val", "--weights", WEIGHTS, "--data", str(tmp_path / "nodata")], ["convert", WEIGHTS],
                     ["detect", VIDEO]):
            assert main([*argv, "--project", str(project)]) == 2
            one_line(capsys, "--project")
    assert not [p for p in tmp_path.rglob("*") if "tmp" in p.name]


def test_a_video_the_disk_cannot_hold_never_gets_its_final_name(tmp_path, capsys, monkeypatch):
    """OpenCV's writer fails silently on a full disk: simulated by a writer that writes nothing."""
    class FullDisk:
        def __init__(self, *args):
            pass

        def write(self, frame):
            pass

        def release(self):
            pass

    video = tmp_path / "clip.avi"
    real = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(3):
        real.write(np.zeros((48, 64, 3), np.uint8))
    real.release()
    monkeypatch.setattr(cv2, "VideoWriter", FullDisk)
    assert main(["detect", str(video), "--project", str(tmp_path / "out"), "--imgsz", "64"]) == 2
    one_line(capsys, "could not be written", "disk full")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*"))


def test_ctrl_c_is_one_line_and_130(tmp_path, capsys, monkeypatch):
    from spikeyolo.detect import run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "draw_detections", interrupted)
    assert main(["detect", VIDEO, "--project", str(tmp_path / "out"), "--imgsz", "64"]) == 130
    one_line(capsys, "interrupted")
    assert not leftovers(tmp_path)


def test_sigterm_removes_every_temporary(tmp_path):
    """A real process, terminated while it writes its video: exit 143, no temporary, nothing under a final name."""
    script = ("import sys, time\nfrom spikeyolo.detect import run\nfrom spikeyolo.cli import main\n"
              "original = run.draw_detections\n"
              "def slow(*a, **k):\n    print('writing', flush=True)\n    time.sleep(0.5)\n"
              "    return original(*a, **k)\n"
              "run.draw_detections = slow\n"
              f"sys.exit(main(['detect', {VIDEO!r}, '--project', {str(tmp_path / 'out')!r}, '--imgsz', '64']))\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    for line in process.stdout:
        if "writing" in line:
            break
    time.sleep(1.2)  # a few frames written under temporary names
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err[-1000:]
    assert "terminated" in err.strip().splitlines()[-1]
    assert not leftovers(tmp_path), leftovers(tmp_path)


def test_a_split_the_dataset_lacks_is_one_line(voc_dataset, tmp_path, capsys):
    assert main(["val", "--weights", WEIGHTS, "--data", str(voc_dataset), "--split", "valid",
                 "--project", str(tmp_path)]) == 2  # a VOC folder prepares train and val (its test set)
    one_line(capsys, "has no split 'valid': --split takes one of train (trainval), val (test) (a role, or the "
             "dataset's own name in brackets)")
    assert main(["val", "--weights", WEIGHTS, "--data", str(voc_dataset), "--val-split", "bogus",
                 "--project", str(tmp_path)]) == 2
    one_line(capsys, "ImageSets/Main/bogus.txt not found: pass a split that exists in ImageSets/Main (test, trainval)")
    assert not list(tmp_path.rglob("*"))


def test_ctrl_c_while_starting_is_one_line():
    """A Ctrl-C while the command's modules are still being imported (seconds on a small machine): one line, 130."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'spikeyolo.cli':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "from spikeyolo.entry import main\n"
            "sys.exit(main())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 130 and len(err) == 1 and "interrupted while starting" in err[0], done.stderr
