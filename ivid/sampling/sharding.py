"""Sampling across processes and nodes launched by ``torchrun``: which rank samples what, on which device.

``torchrun --nnodes N --nproc_per_node G inference/sample.py ...`` starts ``N x G`` copies of the
tool. Each finds its place from torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (read by
:func:`ivid.training.distributed.read_launch_env`) and joins one process group (NCCL on GPUs,
gloo on CPUs). Then:

- every rank checks the options and plans the whole run itself (the same plan everywhere:
  planning is deterministic and reads only the options and files);
- rank 0 alone clears temporaries of an earlier killed run, then all ranks meet at a barrier,
  so no rank deletes a file another is writing;
- rank ``r`` of ``W`` samples jobs ``r, r + W, r + 2W, ...`` (``ivid.sampling.plan.split_jobs``,
  the split the one-process-per-GPU spawn of a single machine uses) and writes exactly those
  samples' files, each atomically, so no file is written by two ranks or left half written;
- rank 0 alone writes ``args.json`` / ``command.txt``;
- at the end every rank reports whether its share succeeded (:meth:`Shard.agree`); only when
  all did does rank 0 go on (summary, "samples written" line), and a rank whose share failed
  makes every rank stop with an error instead of waiting forever.

Every sample's noise comes from its own seed (``ivid.utils.seeds.sample_generators``), so each
file is the same as a single-process run writes (on CPUs: tested to the bit with the same number
of threads per process; on GPUs the batch a sample shares may change the kernels' rounding, as
any other ``--batchsize`` does).

Device of a rank: ``cuda:LOCAL_RANK`` when GPUs are visible and ``--device`` is left unset or
given as ``cuda``; the CPU with ``--device cpu`` or without GPUs; any other ``--device`` as
given. CPU ranks of one machine share its cores: torchrun gives each one thread
(``OMP_NUM_THREADS=1``) unless ``OMP_NUM_THREADS`` is set. A CPU run's numbers depend on its
thread count, so compare a torchrun output with a single-process run of as many threads per
process.
"""

from __future__ import annotations

import datetime
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import torch

from ivid.errors import IvidError
from ivid.training import distributed as dist
from ivid.utils.device import resolve_device
from ivid.utils.io import remove_orphan_temps

from .outputs import SUBDIRS

__all__ = ["Shard", "ShardFailed", "TIMEOUT", "torchrun_shard", "joined", "run_shard", "remove_run_temps",
           "is_main_process"]

#: how long a rank waits for the others at a collective (a rank that finished its share waits for the
#: slowest, which has one batch more at most: hours on CPUs with the released models)
TIMEOUT = datetime.timedelta(days=1)


class ShardFailed(IvidError, RuntimeError):
    """Another rank's share of the samples failed (its own error is in that rank's output)."""


@dataclass(frozen=True)
class Shard:
    """This process's place in a torchrun launch.

    Attributes:
        rank, world_size: global rank and number of ranks.
        local_rank, local_world_size: rank and number of ranks on this machine.
        device: the device this rank samples on.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run's records."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank is here (nothing for one rank)."""
        dist.barrier()

    def agree(self, ok: bool) -> bool:
        """Whether every rank's ``ok`` is true; every rank must call it (a collective)."""
        if self.world_size <= 1 or not dist.is_initialized():
            return bool(ok)
        failed = torch.tensor([0.0 if ok else 1.0], device=self.device)
        return float(dist.all_reduce_max(failed).item()) == 0.0


def _rank_device(device: Optional[str], local_rank: int) -> torch.device:
    if device is None or device in ("auto", "cuda"):
        if torch.cuda.is_available():
            return resolve_device(f"cuda:{local_rank % torch.cuda.device_count()}")
        return resolve_device(None if device != "cuda" else "cuda")  # 'cuda' without a GPU: the usual error
    return resolve_device(device)


def torchrun_shard(device: Optional[str] = None) -> Optional[Shard]:
    """This process's :class:`Shard` when started by ``torchrun``, else None.

    Args:
        device: the ``--device`` option (None / 'auto' / 'cuda': this rank's GPU when there are GPUs).
    """
    env = dist.read_launch_env()
    if env is None:
        return None
    return Shard(env.rank, env.world_size, env.local_rank, env.local_world_size,
                 _rank_device(device, env.local_rank), env.master_addr, env.master_port)


@contextmanager
def joined(shard: Optional[Shard]) -> Iterator[Optional[Shard]]:
    """Join the process group of ``shard`` for the ``with`` block (nothing for None / one rank).

    The group is left on exit, also on an error. Its timeout (:data:`TIMEOUT`) bounds how long
    a rank that finished waits for the slowest (one batch more at most).
    """
    if shard is None:
        yield None
        return
    if shard.device.type == "cuda":
        torch.cuda.set_device(shard.device)
    started = not dist.is_initialized() and shard.world_size > 1
    if started:
        dist.init(shard.rank, shard.world_size, shard.local_rank, shard.device, shard.master_addr,
                  shard.master_port, timeout=TIMEOUT)
    try:
        yield shard
    finally:
        if started:
            dist.shutdown()


def run_shard(shard: Shard, prepare: Callable[[], Any], work: Callable[[Any], None]) -> Any:
    """Plan, sample this rank's share and agree with the other ranks; returns the plan.

    Args:
        shard: this process's place (inside :func:`joined`).
        prepare: checks the options and plans the run (``run_dir`` attribute); rank 0 calls it
            first (it may download checkpoints), the other ranks once rank 0 succeeded.
        work: samples this rank's share of the plan (``split_jobs(jobs, rank, world_size)``).

    Raises:
        ShardFailed: on a rank whose own part succeeded while another rank's failed (that
            rank raises its own error).
    """
    plan = None
    if shard.is_main:
        plan = _attempt(shard, prepare)
        remove_run_temps(plan.run_dir)
    elif shard.agree(True):
        plan = prepare()
    else:
        raise ShardFailed("rank 0 refused the options or files (its error is above); nothing was sampled")
    _attempt(shard, lambda: work(plan))
    return plan


def _attempt(shard: Shard, step: Callable[[], Any]) -> Any:
    """Run ``step`` and tell every rank whether it (and theirs) succeeded; raise when any failed."""
    try:
        result = step()
    except BaseException:
        shard.agree(False)
        raise
    if not shard.agree(True):
        raise ShardFailed(f"another rank failed (its error is in its output); rank {shard.rank}'s samples "
                          "are written, the run is incomplete: run the same command again to add the missing ones")
    return result


def remove_run_temps(run_dir: str) -> None:
    """Delete temporaries that an earlier, killed run left in ``run_dir`` and its sub-folders."""
    for sub in ("", *SUBDIRS):
        remove_orphan_temps(os.path.join(run_dir, sub))


def is_main_process() -> bool:
    """False only in a torchrun rank other than 0 (for what a tool prints once)."""
    env = dist.read_launch_env()
    return env is None or env.rank == 0
