"""The spikeyolo command line: a thin front end over the Python API."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "models"


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


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a (QCFS) detector", description="Train a detector with QCFS activations.")
    p.add_argument("--data", required=True, help="VOC folder, COCO instances .json or ultralytics dataset .yaml")
    p.add_argument("--model", default="yolov8n-relu", help="model yaml or configs/models name (default yolov8n-relu)")
    p.add_argument("--from", dest="from_pt", help="your own ultralytics .pt to fine-tune with QCFS (it is unpickled)")
    p.add_argument("--levels", type=int, default=4, help="QCFS quantization levels L; 0 trains the plain ANN")
    p.add_argument("--threshold", type=float, default=3.0, help="initial QCFS threshold λ of every layer")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu, or a CUDA index such as 0")
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume the last run, or a given last.pt")
    p.add_argument("--project", default="runs/train")
    p.add_argument("--name", default="exp")
    p.add_argument("--seed", type=int, default=0)


def _run_train(args) -> None:
    from spikeyolo.quantize.trainer import train

    if args.levels < 0:
        raise UsageError(f"--levels must be >= 0, got {args.levels}")
    if args.from_pt and not Path(args.from_pt).is_file():
        raise UsageError(f"--from {args.from_pt} not found: pass your ultralytics .pt file")
    model = Path(args.from_pt) if args.from_pt else resolve_model(args.model)
    result = train(args.data, model, levels=args.levels or None, epochs=args.epochs, imgsz=args.imgsz,
                   device=args.device, batch=args.batch, resume=args.resume, threshold=args.threshold,
                   project=str(Path(args.project).resolve()), name=args.name, seed=args.seed)
    print(f"checkpoint: {result.checkpoint}\nmAP50 {result.map50:.4f}  mAP50-95 {result.map50_95:.4f}")


COMMANDS = {"train": (_add_train, _run_train)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikeyolo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from spikeyolo.checkpoint import CheckpointError
    from spikeyolo.data import DatasetError

    try:
        COMMANDS[args.command][1](args)
    except (UsageError, DatasetError, CheckpointError) as err:
        print(f"spikeyolo {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
