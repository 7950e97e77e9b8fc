"""torch.distributed helpers that also work without a process group (world size 1).

This is the only module of ``ivid`` that reads ``os.environ``: it recognises a
``torchrun``-style launch (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). Everything else asks :func:`rank`,
:func:`world_size`, :func:`is_main` and friends, which answer ``0``, ``1`` and
``True`` when no process group was initialised, so every code path runs in a
single plain process on CPU.

Backends: NCCL for CUDA devices, gloo otherwise.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

import torch
import torch.distributed as dist

__all__ = [
    "LaunchEnv", "read_launch_env", "init", "shutdown", "is_initialized", "rank", "world_size",
    "local_rank", "is_main", "barrier", "print0", "backend_for", "broadcast_tensors",
    "all_reduce_mean", "all_reduce_max", "all_gather_tensors", "params_checksum", "gather_checksums",
    "check_params_in_sync",
    "wrap_ddp",
]

#: Process-group timeout (sampling on rank 0 between steps must fit in it).
DEFAULT_TIMEOUT = datetime.timedelta(minutes=60)

_LOCAL_RANK = 0


@dataclass(frozen=True)
class LaunchEnv:
    """Rank layout handed over by an external launcher such as ``torchrun``."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int


def read_launch_env() -> Optional[LaunchEnv]:
    """Return the torchrun rank layout from the environment, or ``None`` when not launched that way.

    Recognised variables: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (required together),
    ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` (default ``127.0.0.1``), ``MASTER_PORT``
    (default 29500).
    """
    env = os.environ
    if not all(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        return None
    try:
        return LaunchEnv(rank=int(env["RANK"]), world_size=int(env["WORLD_SIZE"]),
                         local_rank=int(env["LOCAL_RANK"]),
                         local_world_size=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
                         master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
                         master_port=int(env.get("MASTER_PORT", "29500")))
    except ValueError as e:
        raise ValueError(f"malformed torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK/MASTER_PORT): {e}") from None


def backend_for(device: torch.device) -> str:
    """``"nccl"`` for CUDA devices, ``"gloo"`` for everything else."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(rank: int, world_size: int, local_rank: int, device: torch.device,
         master_addr: str = "127.0.0.1", master_port: int = 29500,
         timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> None:
    """Join the process group (no-op for ``world_size == 1``).

    Uses a TCP rendezvous at ``master_addr:master_port`` and the backend that
    suits ``device`` (:func:`backend_for`).
    """
    global _LOCAL_RANK
    _LOCAL_RANK = int(local_rank)
    if world_size <= 1 or dist.is_initialized():
        return
    kwargs = {}
    if torch.device(device).type == "cuda":
        kwargs["device_id"] = torch.device(device)
    dist.init_process_group(backend=backend_for(device), init_method=f"tcp://{master_addr}:{int(master_port)}",
                            rank=int(rank), world_size=int(world_size), timeout=timeout, **kwargs)


def shutdown() -> None:
    """Leave the process group if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return _LOCAL_RANK


def is_main() -> bool:
    """True on global rank 0 (the only rank that writes files)."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def print0(*args, **kwargs) -> None:
    """``print`` on rank 0 only (flushed)."""
    if is_main():
        print(*args, **kwargs, flush=True)


def broadcast_tensors(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values (no-op for world size 1)."""
    if world_size() <= 1:
        return
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=src)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (a new tensor; ``x`` itself for world size 1)."""
    if world_size() <= 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / world_size()


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Elementwise maximum of ``x`` over ranks (a new tensor)."""
    if world_size() <= 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.MAX)
    return y


def all_gather_tensors(x: torch.Tensor) -> List[torch.Tensor]:
    """Gather an equally shaped tensor from every rank; returns CPU copies ordered by rank.

    ``x`` may live on any device; it travels on ``device`` of the process group
    (CUDA for NCCL), so pass it on the training device.
    """
    if world_size() <= 1:
        return [x.detach().cpu()]
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return [p.cpu() for p in parts]


def params_checksum(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """A cheap order-sensitive float64 fingerprint of ``tensors`` (shape ``(2,)``, on their device).

    Bitwise-identical tensors give identical fingerprints; differing ones almost surely do not.
    """
    device = tensors[0].device if len(tensors) else torch.device("cpu")
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for i, t in enumerate(tensors):
        v = t.detach().to(torch.float64)
        total[0] += v.sum()
        total[1] += v.abs().sum() * (i + 1)
    return total


def gather_checksums(tensors: Sequence[torch.Tensor]) -> List[List[float]]:
    """Every rank's :func:`params_checksum` of ``tensors``, ordered by rank (all ranks must call this)."""
    return [c.tolist() for c in all_gather_tensors(params_checksum(tensors))]


def check_params_in_sync(tensors: Sequence[torch.Tensor], what: str = "parameters") -> List[List[float]]:
    """Raise ``RuntimeError`` if ``tensors`` differ between ranks; return the per-rank checksums.

    All ranks must call this (one small all-gather).
    """
    checksums = gather_checksums(tensors)
    if any(c != checksums[0] for c in checksums[1:]):
        raise RuntimeError(f"{what} diverged between ranks (per-rank checksums {checksums}); this is a bug "
                           "(non-deterministic update, or a rank that skipped a step)")
    return checksums


class _AttrDDP(torch.nn.parallel.DistributedDataParallel):
    """DDP that forwards unknown attribute reads (``num_classes``, ``dtype``, ...) to the wrapped module."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap_ddp(module: torch.nn.Module, device: torch.device,
             find_unused_parameters: bool = False) -> torch.nn.Module:
    """Wrap ``module`` (already on ``device``) in DistributedDataParallel for the training forward.

    Buffers are not re-broadcast every forward (the backbone's only buffer is a
    constant). Attribute reads fall through to the module, so frameworks can
    treat the wrapper like the backbone.
    """
    device = torch.device(device)
    ids = [device] if device.type == "cuda" else None
    params = inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
    no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
                      else {"broadcast_buffers": False})
    return _AttrDDP(module, device_ids=ids, find_unused_parameters=find_unused_parameters, **no_buffer_sync)
