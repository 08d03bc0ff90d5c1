"""Data parallelism across processes started by torchrun (DistributedDataParallel).

Each process samples its own batches (its own generator); gradients are averaged by DDP;
only rank 0 validates and writes files, and shares its decisions with the others.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(device: str) -> tuple[Context, str]:
    """Joins the process group when started by torchrun; returns the context and the device
    this process uses (cuda:LOCAL_RANK on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Context(rank, world, local), device


def broadcast(ctx: Context, value):
    """rank 0's value on every rank (any picklable object)."""
    if not ctx.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(ctx: Context, value) -> list:
    """Every rank's value, in rank order, on every rank."""
    if not ctx.distributed:
        return [value]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out


def mean(ctx: Context, value: float) -> float:
    if not ctx.distributed:
        return value
    return sum(gather(ctx, value)) / ctx.world_size


def close(ctx: Context) -> None:
    """Leaves the process group once every rank has reached this point: a rank that left
    while another still wrote files could make gloo abort the latter at exit."""
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
