"""`spikeyolo distill`: a YOLOv5 detector's spiking-ready (QCFS) twin, taught by the detector on unlabelled photos."""
from __future__ import annotations

from pathlib import Path

from spikeyolo.cli.common import UsageError, add_device, add_output, run_folder


def add_distill(sub) -> None:
    p = sub.add_parser("distill", help="self-distil a YOLOv5 .pt into a QCFS detector that keeps all its classes "
                       "(photos, no labels)",
                       description="The teacher with every activation swapped for QCFS learns to give the teacher's "
                                   "own outputs (its stages' features and its anchor head) on augmented photos: every "
                                   "class it knows is kept, no labels needed. Resumable: the same command with "
                                   "--exist-ok on the same run folder continues after the last finished epoch.")
    p.add_argument("teacher", help="a YOLOv5 v6.x .pt (read without unpickling; its anchor head carried), or spikeyolo "
                   "weights imported from one with --anchor-head")
    p.add_argument("--photos", nargs="+", required=True, metavar="DIR",
                   help="folders (searched recursively) or files of photos; labels are not read")
    p.add_argument("--levels", type=int, default=8, help="QCFS quantization levels L (default 8)")
    p.add_argument("--epochs", type=int, default=60, help="passes over the photos (default 60)")
    p.add_argument("--imgsz", type=int, default=320, help="training image size (default 320)")
    p.add_argument("--batch", type=int, default=16, help="photos per batch (default 16)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam's learning rate, cosine-decayed (default 5e-4)")
    p.add_argument("--feature-weight", type=float, default=1.0, help="weight of the stages' feature term (default 1)")
    p.add_argument("--mixup", type=float, default=0.0, help="share of the training samples blended with a second "
                   "augmented sample (0 to 1; default 0): more distinct inputs from few photos")
    p.add_argument("--seed", type=int, default=0, help="random seed (augmentation, calibration)")
    p.add_argument("--init", metavar="WEIGHTS", help="start the student from earlier QCFS weights of this teacher "
                   "(e.g. a shipped or finished run's; of other L, their thresholds are re-quantized to --levels), not "
                   "from the teacher: a new run with its own learning-rate schedule; their record is kept in the new "
                   "weights' metadata")
    add_device(p)
    add_output(p, "distill")


def run_distill(args) -> None:
    from spikeyolo.device import torch_device
    from spikeyolo.limits import image_size
    from spikeyolo.quantize.selfdistill import SelfDistillSettings, self_distill

    if not Path(args.teacher).is_file() or Path(args.teacher).suffix not in (".pt", ".safetensors"):
        raise UsageError(f"{args.teacher}: pass a YOLOv5 v6.x .pt or spikeyolo .safetensors weights")
    if args.levels < 1:
        raise UsageError("--levels must be at least 1: the student is a QCFS network")
    missing = [photos for photos in args.photos if not Path(photos).exists()]
    if missing:
        raise UsageError(f"--photos {missing[0]} not found: pass folders or files of photos")
    if args.init and (not Path(args.init).is_file() or Path(args.init).suffix != ".safetensors"):
        raise UsageError(f"--init {args.init}: pass spikeyolo .safetensors weights of a student of this teacher")
    image_size(args.imgsz, "distill")
    settings = SelfDistillSettings(str(args.teacher), tuple(str(p) for p in args.photos), args.levels, args.epochs,
                                   args.imgsz, args.batch, args.lr, args.feature_weight, seed=args.seed,
                                   init=str(args.init) if args.init else None, mixup=args.mixup)
    with run_folder(args) as folder:
        weights = self_distill(settings, folder, device=torch_device(args.device))
    print(f"saved {weights}")
