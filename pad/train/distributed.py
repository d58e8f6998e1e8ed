"""torchrun support (the process group: gloo on CPU, NCCL on GPU, from torchrun's env vars) and the
thread count every stage uses."""
from __future__ import annotations

import os
from typing import Mapping

import torch
import torch.distributed as dist

from pad.errors import PadError


def init_distributed() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


THREADS_ENV = "PAD_THREADS"


def thread_count(env: Mapping[str, str] = os.environ) -> int:
    """CPU threads for this process: `PAD_THREADS` if set (the explicit override), else `OMP_NUM_THREADS`
    if set (torchrun sets it to 1 for several ranks unless you do), else the cores this process may use
    (its CPU affinity) shared among the ranks on this machine (torchrun's LOCAL_WORLD_SIZE)."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        if env.get(name, "").strip():
            value = env[name].strip()
            if not value.isdigit() or int(value) < 1:
                raise PadError(f"environment variable {name}={value!r}: expected a whole number of threads >= 1")
            return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, int(env.get("LOCAL_WORLD_SIZE", "1"))))


def set_threads() -> int:
    """Give torch `thread_count()` threads (every stage calls this once, first thing); returns the count."""
    n = thread_count()
    torch.set_num_threads(n)
    return n


def device_for(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
        return torch.device("cuda", local)
    return torch.device("cpu")


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
