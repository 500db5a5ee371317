"""`spikeyolo tune` over several processes (torchrun): each global batch split between the ranks, gradients summed.

    torchrun --nproc_per_node 2 -m spikeyolo.cli tune W --data D --timesteps 4     (gloo on CPUs, NCCL on GPUs)

What the ranks share: the converted network (bias correction runs on rank 0 and its weights are broadcast), the
image order and flips (seeded by the step count), and every optimizer step: each rank computes its part of the
global batch's loss — the class term weighted by its share of the images, the box term divided by the teacher's
confidence summed over all ranks — so that the parts add up to the single-process loss, and the gradients are
summed across ranks before every step. Rank 0 alone writes the resume file and the artifact. Not shared: the
labels' detection loss (ultralytics normalizes it per batch; with a label gain each rank's term is its own batch's)
and the feature loss (normalized per rank): with either, the result is close to, not equal to, one process's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place among the tuning processes (rank 0 of 1 when alone)."""
    rank: int = 0
    world: int = 1

    @property
    def first(self) -> bool:
        return self.rank == 0

    def part(self, count: int) -> slice:
        """This rank's images of a global batch of ``count``: contiguous, the first ranks one more when uneven."""
        size, extra = divmod(count, self.world)
        start = self.rank * size + min(self.rank, extra)
        return slice(start, start + size + (self.rank < extra))

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks (in place; returned)."""
        if self.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def sum_gradients(self, parameters: list[torch.Tensor]) -> None:
        for parameter in parameters:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)  # a rank whose part did not reach it still joins
            self.sum(parameter.grad)

    def broadcast(self, tensors) -> None:
        """Every rank's ``tensors`` become rank 0's (in place)."""
        if self.world > 1:
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def share(self, value):
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def shard_targets(targets: dict | None, part: slice) -> dict | None:
    """The labels of the images in ``part`` of a batch, renumbered from 0."""
    if targets is None:
        return None
    index = targets["batch_idx"]
    keep = (index >= part.start) & (index < part.stop)
    return {"batch_idx": index[keep] - part.start, "cls": targets["cls"][keep], "bboxes": targets["bboxes"][keep]}


def join(device: torch.device) -> tuple[Ranks, torch.device]:
    """(the ranks torchrun started, this rank's device): its WORLD_SIZE, RANK and LOCAL_RANK read, the process group
    joined (NCCL for CUDA, each rank on GPU LOCAL_RANK; gloo otherwise); one process alone when not under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size()), device


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
