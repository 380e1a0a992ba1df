"""Distributed data parallel plumbing: the launcher's environment, the process group, small collectives.

``torchrun --nproc-per-node N`` starts N copies of the same command with
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
:func:`process_group` reads them and joins the group (gloo on CPU, so it runs and
is tested on any machine; NCCL on CUDA, one GPU per local rank). Launched
without torchrun, or with one process, nothing is initialized and every helper
below is the single-process identity, so single-process code paths stay unchanged.

The training loop itself (sharding the global batch, gradient sync, loss
averaging) lives in :mod:`hpbench.train`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "LaunchEnv",
    "all_reduce_sum",
    "barrier",
    "broadcast_buffers",
    "is_distributed",
    "is_main",
    "launch_env",
    "main_first",
    "process_group",
    "rank",
    "world_size",
]


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process stands in a launch: global ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int
    local_rank: int
    world_size: int


def _int_var(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = environ.get(name)
    if text is None:
        if default is None:
            raise RuntimeError(f"WORLD_SIZE is set but {name} is not: launch with torchrun, which sets both")
        return default
    try:
        return int(text)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={text!r} is not an integer") from None


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """The torchrun environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), or None when not launched by it."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    world = _int_var(environ, "WORLD_SIZE")
    global_rank = _int_var(environ, "RANK")
    local = _int_var(environ, "LOCAL_RANK", default=global_rank)
    if world < 1 or not 0 <= global_rank < world or local < 0:
        raise RuntimeError(f"inconsistent launch environment: RANK={global_rank}, WORLD_SIZE={world}, "
                           f"LOCAL_RANK={local}")
    return LaunchEnv(rank=global_rank, local_rank=local, world_size=world)


@contextmanager
def process_group(device: str = "cpu", environ: Mapping[str, str] | None = None) -> Iterator[LaunchEnv | None]:
    """Join the launcher's process group for the block (gloo for ``cpu``, nccl for ``cuda``), then leave it.

    Yields the :class:`LaunchEnv` (None without a launcher). Without a launcher or
    with a single process it initializes nothing; a group someone else
    initialized is used as is and left alone on exit.
    """
    env = launch_env(environ)
    if env is None or env.world_size == 1 or dist.is_initialized():
        yield env
        return
    cuda = torch.device(device).type == "cuda"
    if cuda:
        if env.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {env.local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                               "start at most that many processes per node")
        torch.cuda.set_device(env.local_rank)  # "cuda" below then means this rank's GPU
    dist.init_process_group("nccl" if cuda else "gloo", rank=env.rank, world_size=env.world_size,
                            device_id=torch.device("cuda", env.local_rank) if cuda else None)
    try:
        yield env
    finally:
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside an initialized process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0, the one process that logs, checkpoints, evaluates and writes results."""
    return rank() == 0


def _collective_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo moves CPU ones.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    """Wait until every process gets here (no-op without a process group)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first, the others after it is done: for work that fills a shared cache on disk.

    If rank 0 fails inside the block the others wait at the barrier until the
    launcher (torchrun) stops them.
    """
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over all processes (a new tensor on ``value``'s device; a copy without a group)."""
    if not is_distributed():
        return value.clone()
    total = value.detach().to(_collective_device(), copy=True)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.to(value.device)


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Overwrite every buffer of ``module`` (BatchNorm running statistics) with rank ``src``'s, in place."""
    if not is_distributed():
        return
    with torch.no_grad():
        for buffer in module.buffers():
            staged = buffer.detach().to(_collective_device(), copy=True)
            dist.broadcast(staged, src=src)
            buffer.copy_(staged)
