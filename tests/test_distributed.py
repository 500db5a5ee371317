"""Training beyond one process: ultralytics' multi-GPU rebuild of the QCFS trainer, and λ shared between ranks.

No GPU is needed: the DDP entry point ultralytics generates is run up to the trainer's construction on the CPU
(no launch), and the λ broadcast runs in two gloo processes.
"""
import json
import os
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spikeyolo.quantize.qcfs import QCFS
from tests.conftest import ROOT

CHECK = '''
    import json
    from spikeyolo.quantize.qcfs import QCFS
    model = trainer.get_model(cfg=trainer.args.model, weights=None, verbose=False)
    qcfs = [m for m in model.modules() if isinstance(m, QCFS)]
    print("SETTINGS " + json.dumps({
        "class": type(trainer).__qualname__, "levels": trainer.levels, "threshold": trainer.init_threshold,
        "threshold_lr_scale": trainer.threshold_lr_scale, "teacher": trainer.teacher.describe(),
        "pretrained": str(trainer.pretrained.path), "calibrate_lambda": trainer.calibrate_lambda,
        "qcfs_layers": len(qcfs), "qcfs_levels": sorted({m.levels for m in qcfs}),
        "initial_lambda": sorted({round(float(m.threshold), 4) for m in qcfs}),
        "callbacks": [c.__name__ for c in trainer.callbacks["on_pretrain_routine_end"]],
        "epochs": trainer.args.epochs, "imgsz": trainer.args.imgsz}))
'''


def test_the_ddp_rebuild_of_the_trainer_carries_every_qcfs_setting(voc_dataset, tmp_path):
    """ultralytics pickles the trainer's class, args, model and callbacks and rebuilds the trainer on every rank from
    them alone: the levels, λ's start and learning-rate scale, --from and --teacher must all arrive there."""
    from ultralytics.utils.dist import generate_ddp_file

    from spikeyolo.data import prepare_dataset
    from spikeyolo.quantize.checkpoint import save_detector
    from spikeyolo.quantize.trainer import QCFSTrainer, TeacherSettings, pretrained_model
    from spikeyolo.ultra import build_detection_model

    plain = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=2, verbose=False)  # a ReLU ANN
    plain.names = {0: "bar", 1: "square"}
    source = save_detector(plain, tmp_path / "relu.safetensors", imgsz=64)  # --from, and the teacher
    pretrained, model_yaml = pretrained_model(source)
    teacher = TeacherSettings(str(source), gain=0.5, feature_weight=0.25)
    trainer_class = QCFSTrainer.configured(levels=8, threshold=2.5, threshold_lr_scale=7.0, pretrained=pretrained,
                                           teacher=teacher)
    args = {"data": str(prepare_dataset(voc_dataset)), "model": str(model_yaml), "epochs": 3, "imgsz": 64,
            "device": "cpu", "batch": 4, "project": str(tmp_path / "runs"), "name": "ddp", "workers": 0}
    trainer = trainer_class(overrides=args)
    entry = generate_ddp_file(trainer)
    try:
        script = open(entry).read()
        assert "trainer.train()" in script  # the rank's construction is kept as ultralytics wrote it; not the launch
        rank = tmp_path / "rank.py"
        rank.write_text(script.replace("    trainer.train()", CHECK))
        env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
        done = subprocess.run([sys.executable, str(rank)], capture_output=True, text=True, timeout=300, env=env,
                              cwd=tmp_path)
    finally:
        for path in (entry, entry.replace(".py", ".pt")):
            if os.path.exists(path):
                os.remove(path)
    assert done.returncode == 0, done.stderr[-3000:]
    settings = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("SETTINGS "))[9:])
    assert settings["class"] == "QCFSTrainer"  # the configured subclass, sent by value
    assert settings["levels"] == 8 and settings["threshold"] == 2.5 and settings["threshold_lr_scale"] == 7.0
    assert settings["teacher"] == {"path": "relu.safetensors", "gain": 0.5, "feature_weight": 0.25}
    assert settings["pretrained"] == str(source) and settings["calibrate_lambda"] is True  # λ from its activations
    assert settings["qcfs_layers"] > 50 and settings["qcfs_levels"] == [8] and settings["initial_lambda"] == [2.5]
    assert settings["callbacks"].count("calibrate_lambda_once") == 1 and settings["callbacks"].count(
        "install_teacher") == 1  # carried in _callbacks, not added twice
    assert settings["epochs"] == 3 and settings["imgsz"] == 64


def _calibrate_on_rank(rank: int, world: int, init: str, out: str) -> None:
    """One rank: its own first batch (different on every rank), λ calibrated once, written for the parent."""
    import copy
    from types import SimpleNamespace

    from spikeyolo.quantize.swap import quantize_model
    from spikeyolo.quantize.trainer import calibrate_lambda_once
    from spikeyolo.ultra import build_detection_model

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same initial model everywhere, as DDP's first synchronization leaves it
        model = build_detection_model(ROOT / "configs/models/yolov8n-relu.yaml", nc=3, verbose=False)
        quantize_model(model, 4)
        generator = torch.Generator().manual_seed(100 + rank)
        batch = {"img": torch.randint(0, 255, (2, 3, 64, 64), generator=generator, dtype=torch.uint8)}
        trainer = SimpleNamespace(calibrate_lambda=True, args=SimpleNamespace(resume=False), train_loader=[batch],
                                  device=torch.device("cpu"), model=model,
                                  ema=SimpleNamespace(ema=copy.deepcopy(model)))
        calibrate_lambda_once(trainer)
        lambdas = [float(m.threshold) for m in model.modules() if isinstance(m, QCFS)]
        ema = [float(m.threshold) for m in trainer.ema.ema.modules() if isinstance(m, QCFS)]
        json.dump({"lambda": lambdas, "ema": ema}, open(f"{out}.{rank}", "w"))
    finally:
        dist.destroy_process_group()


def test_lambda_calibrated_once_is_rank_zeros_on_every_rank(tmp_path):
    """Each rank sees its own first batch; after the calibration every rank (and its EMA) holds rank 0's λ."""
    out = str(tmp_path / "lambda")
    mp.spawn(_calibrate_on_rank, args=(2, f"file://{tmp_path / 'rendezvous'}", out), nprocs=2, join=True)
    first, second = (json.load(open(f"{out}.{rank}")) for rank in (0, 1))
    assert first["lambda"] == second["lambda"] == first["ema"] == second["ema"]
    assert len(set(first["lambda"])) > 1  # calibrated, not the constant start
