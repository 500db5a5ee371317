"""The spikeyolo command line: a thin front end over the Python API (one module per stage of commands)."""
from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from pathlib import Path

from spikeyolo import __version__, limits
from spikeyolo.cli.common import CONFIGS, HelpFormatter, UsageError, resolve_model
from spikeyolo.cli.prepare import (add_data_command, run_data, add_train, run_train, add_import, run_import,
    add_convert, run_convert, add_tune, run_tune)
from spikeyolo.cli.distill import add_distill, run_distill
from spikeyolo.cli.evaluate import add_val, run_val, add_layers, run_layers, add_benchmark, run_benchmark
from spikeyolo.cli.run import add_detect, run_detect, add_webcam, run_webcam

__all__ = ["CONFIGS", "UsageError", "build_parser", "main", "resolve_model"]


COMMANDS = {"data": (add_data_command, run_data), "train": (add_train, run_train),
            "convert": (add_convert, run_convert), "tune": (add_tune, run_tune),
            "distill": (add_distill, run_distill), "val": (add_val, run_val),
            "layers": (add_layers, run_layers),
            "detect": (add_detect, run_detect), "import": (add_import, run_import),
            "webcam": (add_webcam, run_webcam), "benchmark": (add_benchmark, run_benchmark)}

# (option, low, high) of every integer option, wherever a command has it (None: unset, its default applies)
INTEGER_OPTIONS = (("timesteps", 1, limits.MAX_TIMESTEPS), ("batch", 1, limits.MAX_BATCH),
                   ("chunk", 1, limits.MAX_TIMESTEPS), ("burst", 1, limits.MAX_BURST),
                   ("levels", 0, limits.MAX_LEVELS), ("calib_images", 1, limits.MAX_CALIB_IMAGES),
                   ("repeats", 1, 1000), ("epochs", 0, 100_000), ("max_frames", 1, 10**9),
                   ("images", 1, limits.MAX_CALIB_IMAGES), ("readouts", 1, limits.MAX_TIMESTEPS))

REAL_OPTIONS = (("conf", 0.0, 1.0, False), ("iou", 0.0, 1.0, False), ("percentile", 0.0, 100.0, True),
                ("initial_membrane", -4.0, 4.0, False), ("threshold", 0.0, 1e6, True),
                ("threshold_scale", 0.0, 100.0, True), ("lr", 0.0, 1.0, True), ("sharpness", 0.0, 100.0, True),
                ("feature_weight", 0.0, 1000.0, False), ("teacher_gain", 0.0, 1000.0, True),
                ("teacher_features", 0.0, 1000.0, False), ("label_gain", 0.0, 1000.0, False),
                ("mixup", 0.0, 1.0, False))

OUTPUT_DIRS = ("project",)
LONG_RUN = 256  # T from which the spiking forward shows a bar over its steps (T = 4096 on one image: minutes)
LONG_RUN_COMMANDS = ("detect", "val", "layers", "webcam")
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)

def _check_numbers(args) -> None:
    """Every number option within spikeyolo.limits, before anything is loaded (one line, exit 2): the one place
    the commands' numbers are checked."""
    for name, low, high in INTEGER_OPTIONS:
        for value in _values(getattr(args, name, None)):
            limits.integer(value, "command line", f"--{name.replace('_', '-')}", low, high)
    for name, low, high, low_open in REAL_OPTIONS:
        for value in _values(getattr(args, name, None)):
            limits.real(value, "command line", f"--{name.replace('_', '-')}", low, high, low_open)
    for value in _values(getattr(args, "imgsz", None)):
        limits.image_size(value, "command line", "--imgsz")

def _values(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]

def _check_outputs(args) -> None:
    """Output folders and files writable, run names plain names: before any work (a webcam run would otherwise
    process a whole video and then fail to save it)."""
    from spikeyolo.atomic import check_output_dir

    name = getattr(args, "name", None)
    if name is not None and (not name or Path(name).name != name or name in (".", "..")):
        raise UsageError(f"--name {name!r} must be a plain folder name (no / or ..): runs stay inside --project")
    for option in OUTPUT_DIRS:
        if getattr(args, option, None):
            check_output_dir(getattr(args, option), f"--{option.replace('_', '-')}")

def _check_device(args) -> None:
    """A --device this machine lacks is one clear line before anything runs."""
    from spikeyolo.device import check_device

    if getattr(args, "device", None) is not None:
        try:
            check_device(args.device, many=args.command == "train")
        except ValueError as err:
            raise UsageError(str(err)) from None

class _Commands:
    """The subcommand parsers, each showing its options' defaults."""

    def __init__(self, sub):
        self.sub = sub

    def add_parser(self, name: str, **kwargs):
        return self.sub.add_parser(name, formatter_class=HelpFormatter, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikeyolo", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"spikeyolo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(_Commands(sub))
    return parser


DESCRIPTION = ("YOLO detectors as spiking neural networks: train with QCFS, convert, evaluate at every T, detect. "
               "Every command writes into a new run folder (--project/--name). `spikeyolo COMMAND --help` for its "
               "options.")

def _quiet_opencv() -> None:
    """OpenCV's and FFmpeg's own C++ logs off: every failure they print about (a camera that is not there, a frame
    that could not be written) reaches the user as the command's one line instead."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    if "cv2" in sys.modules:  # already imported (a caller of main()): its logger read the variable at start
        sys.modules["cv2"].utils.logging.setLogLevel(sys.modules["cv2"].utils.logging.LOG_LEVEL_SILENT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _quiet_opencv()
    from spikeyolo.checkpoint import CheckpointError
    from spikeyolo.convert import ConversionError
    from spikeyolo.data import DatasetError
    from spikeyolo.events import EventError
    from spikeyolo.detect.sources import SourceError

    from spikeyolo.atomic import OutputError, remove_pending

    previous = signal.signal(signal.SIGTERM, _terminate)
    if args.command in LONG_RUN_COMMANDS:
        from spikeyolo.engine.runner import show_long_runs

        show_long_runs(LONG_RUN)
    try:
        _check_numbers(args)
        _check_device(args)
        _check_outputs(args)
        COMMANDS[args.command][1](args)
    except (UsageError, DatasetError, CheckpointError, ConversionError, SourceError, EventError, OutputError,
            limits.LimitError) as err:
        print(f"spikeyolo {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk or quota, a file-size limit, a read-only or failing device: one line
        if err.errno not in WRITE_ERRORS or os.environ.get("SPIKEYOLO_DEBUG"):
            raise
        remove_pending()
        where = f" {err.filename}" if err.filename else ""
        print(f"spikeyolo {args.command}: error: cannot write{where}: {os.strerror(err.errno)}; free some space or "
              "choose another --project (nothing half-written was kept)", file=sys.stderr)
        return 2
    except ValueError as err:  # the Python API's checks (a value no CLI check caught); SPIKEYOLO_DEBUG=1: traceback
        if os.environ.get("SPIKEYOLO_DEBUG"):
            raise
        print(f"spikeyolo {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        remove_pending()
        print(f"spikeyolo {args.command}: interrupted (nothing half-written was kept)", file=sys.stderr)
        return 130
    except Terminated:
        remove_pending()
        print(f"spikeyolo {args.command}: terminated (nothing half-written was kept)", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        if args.command in LONG_RUN_COMMANDS:
            show_long_runs(None)
    return 0

def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else repr(err)

class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that every writer removes its temporaries on the way out."""

def _terminate(signum, frame):
    raise Terminated()

