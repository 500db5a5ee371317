"""One output convention: every command that writes does so into PROJECT/NAME (a new folder unless --exist-ok),
nothing beside its inputs or anywhere else, files readable by others (0644 under the usual umask)."""
import os
import shutil
import stat

import cv2
import numpy as np
import pytest

from spikeyolo.cli import build_parser, main
from spikeyolo.quantize.checkpoint import save_detector
from tests.eval.test_val_cli import live_model_two_classes
from tests.detect.test_detect_cli import _video

WRITERS = ("train", "convert", "tune", "val", "layers", "detect", "import", "webcam", "benchmark")


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_is_explained_and_outputs_are_named_alike(command):
    parser = _subcommands()[command]
    options = {s for a in parser._actions for s in a.option_strings}
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings[0]} has no help"
    assert not options & {"--out", "--output", "--save-dir", "--json"}, f"{command}: one output convention"
    if command in WRITERS:
        assert {"--project", "--name", "--exist-ok"} <= options, command
        assert parser.get_default("project") == f"runs/{command}"
    if command == "data":
        assert "--project" not in options  # it writes nothing a user keeps (the dataset cache only)


def test_version_and_help_show_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("spikeyolo ")
    help_text = " ".join(_subcommands()["detect"].format_help().split())
    assert "(default: 300)" in help_text and "(default: runs/detect)" in help_text


def _tree(root):
    """Every path under root with its size and modification time (folders too)."""
    return {str(p.relative_to(root)): (p.is_dir(), 0 if p.is_dir() else p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


@pytest.fixture
def inputs(tmp_path, voc_dataset):
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copytree(voc_dataset, folder / "voc")
    save_detector(live_model_two_classes(), folder / "m.safetensors", imgsz=64)
    cv2.imwrite(str(folder / "IMG_1.JPG"), np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8))
    _video(folder / "cam.avi", frames=3)
    return folder


def test_no_command_writes_outside_its_run_folder(inputs, tmp_path, monkeypatch):
    """Each writing command, run from a working folder, with inputs elsewhere: the inputs' tree and the working
    folder are unchanged except for ./runs/<command>/exp, whose files are 0644 (umask 022)."""
    os.umask(0o022)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    weights, data = str(inputs / "m.safetensors"), str(inputs / "voc")
    commands = {
        "detect": ["detect", str(inputs / "IMG_1.JPG"), "--weights", weights, "--timesteps", "1", "--save-txt"],
        "convert": ["convert", weights],
        "val": ["val", "--weights", weights, "--data", data, "--timesteps", "1", "--imgsz", "64", "--images", "4"],
        "layers": ["layers", "--weights", weights, "--data", data, "--timesteps", "1", "--images", "2"],
        "tune": ["tune", weights, "--data", data, "--timesteps", "1", "--epochs", "0", "--calib-images", "2",
                 "--imgsz", "64"],
        "webcam": ["webcam", "--source", str(inputs / "cam.avi"), "--weights", weights, "--headless",
                   "--timesteps", "1"],
        "benchmark": ["benchmark", "--weights", weights, "--imgsz", "64", "--timesteps", "1", "--repeats", "1",
                      "--engines", "ann,snn"],
        "train": ["train", "--data", data, "--model", "yolov8n-relu", "--epochs", "1", "--imgsz", "64", "--batch",
                  "4", "--device", "cpu", "workers=0"],
    }
    before = _tree(inputs)
    for name, argv in commands.items():
        assert main(argv) == 0, name
        assert sorted(p.name for p in work.iterdir()) == ["runs"], name
        assert sorted(p.name for p in (work / "runs").iterdir()) == sorted(list(commands)[:list(commands).index(name)
                                                                                    + 1]), name
        run = work / "runs" / name
        assert [p.name for p in run.iterdir()] == ["exp"], name
        files = [p for p in (run / "exp").rglob("*") if p.is_file()]
        assert files, name
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, (name, path)
    assert _tree(inputs) == before, "a command wrote beside its inputs"
    assert (work / "runs/detect/exp/IMG_1.JPG").is_file()  # the input's own name, its suffix's case kept
    assert (work / "runs/detect/exp/labels/IMG_1.txt").is_file()


def test_a_second_run_gets_a_new_folder_and_exist_ok_reuses_one(inputs, tmp_path):
    argv = ["convert", str(inputs / "m.safetensors"), "--project", str(tmp_path / "p")]
    assert main(argv) == 0 and main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["exp", "exp2"]
    assert main([*argv, "--exist-ok"]) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["exp", "exp2"]
    assert main([*argv, "--name", "a/b"]) == 2
