"""Data-parallel training across processes (``torchrun --nproc_per_node N -m unpaired.cli train ...``).

Each process trains on its own slice of the global batch (``train.batch_size`` images per process per
domain): process r of N takes the slots r*B .. r*B+B-1 of the batch a single process would draw with
batch size N*B, so N processes reproduce one process with an N times larger batch. After each group's
backward the gradients of that group are averaged with one all-reduce over a flat buffer (the methods
have several optimiser groups and update them in turn, which DistributedDataParallel's one-forward /
one-backward contract does not fit). Process 0 alone writes logs, sample grids and checkpoints.
Backends: NCCL on CUDA, Gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device_name: str) -> World:
    """Join the process group that torchrun describes in the environment (a single process otherwise)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return World(rank, size, local_rank)


def average_gradients(module: nn.Module, world: World) -> None:
    """Average the gradients of ``module``'s parameters over all processes, in one flat all-reduce."""
    if not world.distributed:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world.size)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: nn.Module, world: World) -> None:
    """Make every process start from process 0's parameters and buffers."""
    if world.distributed:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, 0)


def any_process(flag: bool, world: World, device: torch.device) -> bool:
    """True on every process if ``flag`` is true on any (e.g. a stop request or a non-finite loss)."""
    if not world.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(obj: object, world: World) -> list[object]:
    if not world.distributed:
        return [obj]
    out: list[object] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def wait_for_all(world: World) -> None:
    """Block until every process has got here (nothing to wait for in a single process)."""
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "World",
    "any_process",
    "average_gradients",
    "broadcast_module",
    "gather_objects",
    "init_world",
    "shutdown",
    "wait_for_all",
]
