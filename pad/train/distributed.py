"""torchrun support: set up the process group (gloo on CPU, NCCL on GPU) from torchrun's env vars."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def set_threads(world: int, cores: int = 2) -> None:
    """Share `cores` CPU threads among the ranks, unless OMP_NUM_THREADS already says how many."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, cores // world))


def device_for(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
        return torch.device("cuda", local)
    return torch.device("cpu")


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
