"""spikeyolo tune in two processes (torchrun, gloo on the CPU) gives the artifact of one process with the same
global batch: each rank takes half of every batch, the loss parts add up to the whole, gradients are summed."""
import subprocess
import sys

import pytest
import torch

from spikeyolo.checkpoint import read_metadata, read_tensors
from spikeyolo.cli import main
from spikeyolo.quantize.checkpoint import save_detector
from spikeyolo.tune.distributed import Ranks, shard_targets
from tests.convert.test_convert import live_model

# Two processes sum the gradients of two half-batches where one process takes the full batch's: the same sums in
# another order, so the weights differ in their last bits (measured: 4.8e-6 at most, after 2 Adam steps at lr 1e-3,
# whose steps are ~lr whatever the gradient's size). The bound, 1e-4, is 20x that and 20x below one Adam step: an
# error in the sharing (a rank stepping on its half alone, a part weighted wrongly) moves weights by ~lr.
LR, STEPS, BOUND = 1e-3, 2, 1e-4


def _tune(arguments: list[str], processes: int, project, name: str):
    command = ["tune", *arguments, "--project", str(project), "--name", name]
    if processes == 1:
        assert main(command) == 0
    else:
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                               str(processes), "-m", "spikeyolo.cli", *command], capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    found = list((project / name).glob("*.safetensors"))
    assert len(found) == 1, found  # one artifact (rank 0's), no resume file left
    return found[0]


def test_two_processes_tune_to_the_artifact_of_one(voc_dataset, tmp_path):
    weights = save_detector(live_model("yolov8n-relu", 4), tmp_path / "m.safetensors", imgsz=64)
    arguments = [str(weights), "--data", str(voc_dataset), "--timesteps", "2", "--epochs", "1", "--batch", "4",
                 "--images", str(4 * STEPS), "--calib-images", "4", "--imgsz", "64", "--lr", str(LR),
                 "--label-gain", "0", "--device", "cpu"]
    alone = _tune(arguments, 1, tmp_path / "runs", "one")
    shared = _tune(arguments, 2, tmp_path / "runs", "two")
    first, second = read_tensors(alone), read_tensors(shared)
    assert first.keys() == second.keys()
    worst = max(float((first[k].float() - second[k].float()).abs().max()) for k in first)
    assert worst <= BOUND, worst
    print(f"largest difference between the one- and two-process artifacts: {worst:.2e}")
    meta = read_metadata(shared, ("spikeyolo-snn/3",))["tuning"]
    assert meta["processes"] == 2 and len(meta["losses"]) == 1
    assert meta["losses"][0] == pytest.approx(read_metadata(alone, ("spikeyolo-snn/3",))["tuning"]["losses"][0],
                                              rel=1e-3)  # the whole batch's loss, summed from the two halves


def test_each_rank_takes_its_part_of_a_batch_and_its_labels():
    parts = [Ranks(rank, 3).part(7) for rank in range(3)]
    assert parts == [slice(0, 3), slice(3, 5), slice(5, 7)]
    targets = {"batch_idx": torch.tensor([0.0, 3.0, 4.0, 6.0]), "cls": torch.tensor([1.0, 2.0, 0.0, 1.0]),
               "bboxes": torch.arange(16.0).view(4, 4)}
    middle = shard_targets(targets, parts[1])
    assert middle["batch_idx"].tolist() == [0.0, 1.0] and middle["cls"].tolist() == [2.0, 0.0]
    assert torch.equal(middle["bboxes"], targets["bboxes"][1:3])
