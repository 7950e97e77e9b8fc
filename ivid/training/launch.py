"""Run a training function in the right set of processes.

* Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set): run once in this
  process with the launcher's layout; no spawning.
* Otherwise world size = ``num_nodes * processes per node``, where processes per
  node = ``num_gpus`` (default: every visible GPU) on CUDA, or ``num_gpus``
  (default 1) CPU processes with gloo. World size 1 runs in this process without
  a process group; otherwise one process per local rank is spawned and this
  process waits, forwarding SIGTERM/SIGINT to its children (which stop
  gracefully, see :mod:`.signals`).

The function receives a :class:`WorkerContext` and the extra arguments; it must
be importable (defined at module level) when processes are spawned.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch

from ivid.errors import OptionError

from . import distributed as dist

__all__ = ["WorkerContext", "ProcessLayout", "plan_layout", "launch", "parse_port"]


@dataclass(frozen=True)
class WorkerContext:
    """Where a worker runs: global rank, local rank, world size and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device


@dataclass(frozen=True)
class ProcessLayout:
    """The process plan of a run (see :func:`plan_layout`)."""

    device: torch.device          # the base device (type + explicit index, if one was asked for)
    procs_per_node: int
    num_nodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    torchrun: Optional[dist.LaunchEnv] = None

    @property
    def world_size(self) -> int:
        return self.torchrun.world_size if self.torchrun else self.procs_per_node * self.num_nodes

    def device_of(self, local_rank: int) -> torch.device:
        if self.device.type != "cuda":
            return self.device
        if self.procs_per_node == 1 and self.torchrun is None and self.device.index is not None:
            return self.device
        return torch.device(self.device.type, local_rank)


def plan_layout(device: torch.device, num_gpus: Optional[int] = None, num_nodes: int = 1, node_rank: int = 0,
                master_addr: str = "127.0.0.1", master_port: Union[int, str] = 29500) -> ProcessLayout:
    """Decide how many processes to run on this node.

    Args:
        device: resolved base device (``ivid.utils.resolve_device``).
        num_gpus: processes per node; ``None`` or -1 (the reference's "all") = all visible
            GPUs on CUDA (1 when a device index was given), 1 on CPU.
        num_nodes, node_rank, master_addr, master_port: the multi-node rendezvous (the port
            as a number or a numeric string, as the reference's ``--master_port '12345'``).

    Raises:
        ValueError: inconsistent options (naming the option).
    """
    if num_gpus == -1:
        num_gpus = None
    port = parse_port(master_port)
    env = dist.read_launch_env()
    if env is not None:
        return ProcessLayout(device, env.local_world_size, master_addr=env.master_addr,
                             master_port=env.master_port, torchrun=env)
    if num_nodes < 1 or not 0 <= node_rank < num_nodes:
        raise OptionError(f"--num_nodes {num_nodes} --node_rank {node_rank}: need 0 <= node_rank < num_nodes")
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        procs = num_gpus if num_gpus is not None else (1 if device.index is not None else visible)
        if procs > visible:
            raise OptionError(f"--num_gpus {procs}: only {visible} CUDA device(s) visible")
    else:
        procs = 1 if num_gpus is None else num_gpus
    if procs < 1:
        raise OptionError(f"--num_gpus {procs}: must be >= 1")
    return ProcessLayout(device, int(procs), int(num_nodes), int(node_rank), master_addr, port)


def parse_port(value: Any) -> int:
    """A TCP port from an int or a numeric string (``"12345"``); ValueError naming --master_port otherwise."""
    text = str(value).strip().strip("'\"")
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise OptionError(f"--master_port {value!r}: expected a port number 1-65535, e.g. 12345")
    return int(text)


def _run_worker(local_rank: int, fn: Callable, args: Tuple[Any, ...], layout: ProcessLayout) -> Any:
    if layout.torchrun is not None:
        rank = layout.torchrun.rank
    else:
        rank = layout.node_rank * layout.procs_per_node + local_rank
    device = layout.device_of(local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif layout.procs_per_node > 1:  # CPU processes share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // layout.procs_per_node))
    dist.init(rank, layout.world_size, local_rank, device, layout.master_addr, layout.master_port)
    try:
        return fn(WorkerContext(rank, local_rank, layout.world_size, device), *args)
    finally:
        dist.shutdown()


def _spawn(fn: Callable, args: Tuple[Any, ...], layout: ProcessLayout) -> None:
    import torch.multiprocessing as mp

    context = mp.start_processes(_run_worker, args=(fn, args, layout), nprocs=layout.procs_per_node,
                                 join=False, start_method="spawn")

    def forward(signum, frame):
        for process in context.processes:
            if process.is_alive():
                os.kill(process.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not context.join(timeout=1.0):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def launch(fn: Callable, args: Sequence[Any] = (), layout: Optional[ProcessLayout] = None) -> Any:
    """Run ``fn(WorkerContext, *args)`` in every process of ``layout`` (default: one CPU process).

    Returns ``fn``'s result when it ran in this process, else ``None``.
    """
    layout = layout or plan_layout(torch.device("cpu"))
    args = tuple(args)
    if layout.torchrun is not None:
        return _run_worker(layout.torchrun.local_rank, fn, args, layout)
    if layout.world_size == 1:
        return _run_worker(0, fn, args, layout)
    if layout.procs_per_node == 1:
        return _run_worker(0, fn, args, layout)
    _spawn(fn, args, layout)
    return None
