"""What every command shares: options, model names, run folders, the usage error."""
from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

from spikeyolo.resources import resource


CONFIGS = resource("configs/models")

SNM_HELP = ("signed neurons with memory (Wang et al. 2022): negative spikes take back earlier ones, cutting the "
            "error at few steps; leaky layers track the signed quantizer (they always do in qcfs mode)")

class UsageError(ValueError):
    """Bad command-line input; printed as one line."""

def resolve_model(name: str) -> Path:
    """A model yaml path, or a short name from configs/models (e.g. 'yolov8n-relu')."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (CONFIGS / name, CONFIGS / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml"))) or "none found"
    raise UsageError(f"model {name} not found: pass a model yaml or one of: {known}")

DATA_HELP = ("a COCO root or instances .json, a Roboflow COCO export, a VOCdevkit or VOC folder, a labelImg folder, "
             "or a dataset .yaml (ultralytics, or spikeyolo's format: coco|voc); `spikeyolo data PATH` shows what "
             "it finds")

def add_data_options(p, required: bool = True) -> None:
    """--data and the split choice, the same on every command that reads a dataset."""
    if required:
        p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--train-split", help="the dataset's split(s) to train on, in its own names (e.g. trainval, "
                   "2007/trainval+2012/trainval, train2017, train); default: the layout's standard")
    p.add_argument("--val-split", help="the dataset's split to validate on (e.g. test, 2007/test, val2017, valid)")

def add_output(p, command: str) -> None:
    """--project/--name/--exist-ok: where every command writes (the one convention, as ultralytics has it)."""
    p.add_argument("--project", default=f"runs/{command}", help="folder of the runs; each run writes into a new "
                   "folder PROJECT/NAME (then NAME2, NAME3, …), never beside its input, never over an earlier run")
    p.add_argument("--name", default="exp", help="the run's folder name inside --project")
    p.add_argument("--exist-ok", action="store_true", help="write into PROJECT/NAME even if it exists (files of "
                   "the same name in it are replaced; how an interrupted tune continues)")


def new_run_dir(base: str | Path, name: str = "exp", exist_ok: bool = False) -> Path:
    """base/name, base/name2, ...: a new folder, never an earlier run's (``exist_ok``: base/name as it is)."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    if exist_ok:
        folder = base / name
        folder.mkdir(exist_ok=True)
        return folder
    for i in range(1, 10_000):
        folder = base / (name if i == 1 else f"{name}{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise UsageError(f"too many runs in {base}: clean it up")


@contextmanager
def run_folder(args):
    """The run's folder (--project/--name/--exist-ok), removed again (with the project folder this made) if the
    run fails before writing anything into it."""
    project = Path(args.project)
    made_project = not project.exists()
    folder = new_run_dir(project, args.name, args.exist_ok)
    try:
        yield folder
    except BaseException:
        for made in (folder, project if made_project else None):
            if made is not None and made.is_dir() and not any(made.iterdir()):
                made.rmdir()
        raise


class HelpFormatter(argparse.HelpFormatter):
    """Every option's default in its help, unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        default = ",".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else action.default
        return f"{text} (default: {default})".strip()


def float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values

def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values

def index_list(text: str) -> list[int]:
    """Comma-separated indices from 0 (e.g. class indices)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0 or max(values) > 100_000:
        raise argparse.ArgumentTypeError(f"expected indices 0 … 100000, got {text!r}")
    return sorted(set(values))


def add_device(p, many: bool = False) -> None:
    p.add_argument("--device", default="auto", help="auto (default: the first GPU if there is one, else the CPU), "
                   "cpu, or a CUDA index such as 0" + (", or several (0,1: ultralytics' multi-GPU training, one "
                                                       "process per GPU)" if many else ""))

def add_precision(p) -> None:
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="convolutions in this precision (SNN weights converted once, spikes in that dtype, membranes "
                        "float32; the ANN under autocast; val keeps its ANN row "
                        "float32). fp16/bf16 pay on GPUs; on CPUs without native support they are much slower")

def add_compile(p) -> None:
    p.add_argument("--compile", action="store_true", help="run the SNN through torch.compile (one graph per T "
                   "slice; minutes of compiling first, on a CPU often slower than eager: see the benchmark)")


def add_stream(p) -> None:
    p.add_argument("--stream", action="store_true", help="carry the SNN's membranes from frame to frame: each "
                   "frame adds T steps to the same network (the detections are its running output since the last "
                   "reset); frames one at a time")
    p.add_argument("--reset-every", type=int, default=0, metavar="N",
                   help="with --stream: start again from reset membranes every N frames (default 0: never)")
    p.add_argument("--scene-cut", type=float, default=0.0, metavar="D",
                   help="with --stream: also reset on a frame whose mean absolute pixel change (in [0, 1]) from the "
                        "previous exceeds D (default 0: off)")


def stream_policy(args):
    """The StreamPolicy the --stream options ask for (None without --stream); options without it are one error."""
    if not args.stream:
        if args.reset_every or args.scene_cut:
            raise UsageError("--reset-every and --scene-cut set when a stream resets: they need --stream")
        return None
    from spikeyolo.detect.predictor import StreamPolicy

    try:
        return StreamPolicy(args.reset_every, args.scene_cut)
    except ValueError as err:
        raise UsageError(f"--stream: {err}") from None


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
