"""Deterministic, resumable, rank-sharded batches.

The order of samples depends only on ``(seed, epoch)``: each epoch is a
permutation of the dataset drawn from a generator seeded with
``seed`` and ``epoch``; rank ``r`` of ``W`` takes every ``W``-th entry starting at
``r`` (disjoint shards, the tail that does not divide evenly is dropped, as is
the last incomplete batch). Datasets draw their augmentation noise per
``(seed, epoch, index)`` (``dataset.set_epoch``), so a batch is a pure function
of ``(seed, epoch, position)`` and a run resumed at a saved position sees
exactly the batches an uninterrupted run would have seen.

Worker processes never outlive an error: DataLoader workers ignore SIGTERM/SIGINT
(the trainer stops them itself, after its graceful save), so Python's exit-time
``terminate()`` + ``join()`` of leftover workers would wait forever.
:meth:`BatchStream.close` - called on every exit path of the trainer, after an
error in :meth:`BatchStream.next`, and at interpreter exit for streams still
open - shuts the workers down and kills any that do not stop.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import weakref
from typing import Any, Dict, Iterator, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ivid.errors import unwrap_worker_error

__all__ = ["epoch_permutation", "ShardSampler", "BatchStream"]

#: Multiplier that separates the per-epoch permutation seeds of different base seeds.
_EPOCH_SEED_STRIDE = 1_000_003


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The dataset order of ``epoch``: a permutation of ``range(num_items)`` (int64)."""
    g = torch.Generator().manual_seed(int(seed) * _EPOCH_SEED_STRIDE + int(epoch))
    return torch.randperm(num_items, generator=g)


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the training process (which stops them when it exits)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class ShardSampler(Sampler):
    """Indices of one rank's shard of one epoch, starting at position ``start`` of the shard.

    Args:
        num_items: dataset length.
        rank, world_size: this process's shard.
        seed, epoch: select the permutation (:func:`epoch_permutation`).
        start: number of leading shard entries to skip (resume inside an epoch).
    """

    def __init__(self, num_items: int, rank: int, world_size: int, seed: int, epoch: int, start: int = 0):
        self.num_items, self.rank, self.world_size = int(num_items), int(rank), int(world_size)
        self.seed, self.epoch, self.start = int(seed), int(epoch), int(start)
        self.shard_size = self.num_items // self.world_size

    def __iter__(self) -> Iterator[int]:
        order = epoch_permutation(self.num_items, self.seed, self.epoch)
        shard = order[self.rank:self.shard_size * self.world_size:self.world_size]
        return iter(shard[self.start:].tolist())

    def __len__(self) -> int:
        return max(self.shard_size - self.start, 0)


#: streams with a live loader, closed at interpreter exit (before multiprocessing joins their workers)
_OPEN_STREAMS: "weakref.WeakSet[BatchStream]" = weakref.WeakSet()
#: seconds a worker may take to exit after the shutdown request before it is killed
WORKER_EXIT_TIMEOUT_S = 5.0


def shutdown_loader_iterator(iterator: Any) -> None:
    """Stop the worker processes of a DataLoader iterator; kill those that do not exit in time."""
    workers: List[Any] = list(getattr(iterator, "_workers", None) or [])
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        with contextlib.suppress(Exception):
            shutdown()
    for worker in workers:
        with contextlib.suppress(Exception):
            worker.join(timeout=WORKER_EXIT_TIMEOUT_S if worker.is_alive() else 0)
            if worker.is_alive():  # ignores SIGTERM by design: SIGKILL
                worker.kill()
                worker.join(timeout=WORKER_EXIT_TIMEOUT_S)


@atexit.register
def _close_open_streams() -> None:
    for stream in list(_OPEN_STREAMS):
        stream.close()


class BatchStream:
    """Endless iterator of collated per-rank batches that knows its position.

    Args:
        dataset: a map-style dataset of sample dicts; ``set_epoch(epoch)`` is called
            when present before each epoch.
        batch_size: samples per rank per step.
        rank, world_size: the shard.
        seed: data-order seed (the same on every rank).
        num_workers: DataLoader worker processes (0 = load in this process).
        epoch, batch_in_epoch: starting position (from a checkpoint).
        pin_memory: pin host memory (useful when training on CUDA).

    Attributes:
        epoch, batch_in_epoch: position of the NEXT batch :meth:`next` returns.
        batches_per_epoch: full batches per rank per epoch.
    """

    def __init__(self, dataset: Dataset, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 num_workers: int = 0, epoch: int = 0, batch_in_epoch: int = 0, pin_memory: bool = False):
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.rank, self.world_size, self.seed = int(rank), int(world_size), int(seed)
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        self.num_items = len(dataset)
        self.batches_per_epoch = (self.num_items // self.world_size) // self.batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(f"the dataset has {self.num_items} samples, fewer than one batch of "
                             f"{self.batch_size} per rank x {self.world_size} rank(s); "
                             "add data or lower the batch size")
        self.epoch, self.batch_in_epoch = int(epoch), int(batch_in_epoch)
        if self.batch_in_epoch >= self.batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self._iter: Optional[Iterator[Dict[str, Any]]] = None

    def _open_epoch(self) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        sampler = ShardSampler(self.num_items, self.rank, self.world_size, self.seed, self.epoch,
                               start=self.batch_in_epoch * self.batch_size)
        worker_seed = torch.Generator().manual_seed(
            self.seed * _EPOCH_SEED_STRIDE + self.epoch + 7919 * self.rank)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, drop_last=True,
                            num_workers=self.num_workers, pin_memory=self.pin_memory, generator=worker_seed,
                            persistent_workers=False, worker_init_fn=_ignore_stop_signals)
        self._iter = iter(loader)
        _OPEN_STREAMS.add(self)

    def next(self) -> Dict[str, Any]:
        """The next batch (a dict of stacked tensors); advances the position, rolling over epochs.

        Raises:
            the dataset's error (e.g. :class:`~ivid.data.DataUnreadableError`) with its own
            message, also when a worker process raised it; the workers are stopped first.
        """
        if self._iter is None:
            self._open_epoch()
        try:
            batch = next(self._iter)
        except Exception as err:
            self.close()
            cleaned = unwrap_worker_error(err)
            if cleaned is err:
                raise
            raise cleaned from None
        self.batch_in_epoch += 1
        if self.batch_in_epoch >= self.batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            self._close_iterator()
        return batch

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "batch_size": self.batch_size,
                "world_size": self.world_size, "seed": self.seed}

    def _close_iterator(self) -> None:
        iterator, self._iter = self._iter, None
        if iterator is not None:
            shutdown_loader_iterator(iterator)

    def close(self) -> None:
        """Stop the current loader's worker processes (killing any that hang) and drop it."""
        self._close_iterator()
        _OPEN_STREAMS.discard(self)
