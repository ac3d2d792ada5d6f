"""Process launchers: torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and SLURM
(``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``).

Training sets up DDP from them (``setup``); ``infer --shard auto`` reads this process's
place among its peers from them (``launch_rank``), and every process takes its own GPU
(``launcher_device``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch


def env_int(*names: str) -> Optional[int]:
    """The first of ``names`` set to a whole number in the environment, else None."""
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def world_size() -> Optional[int]:
    """Processes started by torchrun (``WORLD_SIZE``); None outside a launcher."""
    return env_int("WORLD_SIZE")


def launch_rank() -> Optional[tuple[int, int]]:
    """``(rank, world)`` of this process from torchrun, else SLURM; None when not set."""
    rank = env_int("RANK", "SLURM_PROCID")
    world = env_int("WORLD_SIZE", "SLURM_NTASKS")
    return None if rank is None or world is None else (rank, world)


def launcher_device(device: str) -> str:
    """``"auto"`` under torchrun: this process's GPU, ``cuda:$LOCAL_RANK``; else ``device``."""
    local = env_int("LOCAL_RANK")
    if device != "auto" or local is None:
        return device
    if torch.cuda.is_available() and local < torch.cuda.device_count():
        return f"cuda:{local}"
    return device


def default_workers() -> int:
    """Data-loader workers: min(4, CPUs available to this process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        cpus = os.cpu_count() or 1
    return min(4, cpus)


@dataclass
class Dist:
    """This process in a (possibly one-process) training job."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes, validates and saves."""
        return self.rank == 0


def setup(device: str) -> Dist:
    """torchrun (``WORLD_SIZE`` > 1): init the process group; else resolve ``device``."""
    from ..predict import resolve_device
    world = world_size() or 1
    if world <= 1:
        return Dist(0, 1, resolve_device(device))
    import torch.distributed as dist
    local = env_int("LOCAL_RANK") or 0
    if torch.cuda.is_available() and str(device) != "cpu":
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Dist(dist.get_rank(), dist.get_world_size(), dev)


def barrier(env: Dist) -> None:
    """Wait for every process (a no-op for one)."""
    if env.world > 1:
        import torch.distributed as dist
        dist.barrier()


def mean_over_processes(values: torch.Tensor, env: Dist) -> torch.Tensor:
    """``values`` averaged over all processes (in place; unchanged for one)."""
    if env.world > 1:
        import torch.distributed as dist
        dist.all_reduce(values)
        values /= env.world
    return values


def teardown(env: Dist) -> None:
    """Wait for every process, then leave the process group."""
    barrier(env)
    if env.world > 1:
        import torch.distributed as dist
        dist.destroy_process_group()
