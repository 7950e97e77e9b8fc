"""Single-process behaviour of the distributed helpers and the process plan."""

import pytest
import torch

from ivid.training import distributed as dist
from ivid.training.launch import launch, plan_layout


def test_helpers_work_without_a_process_group():
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    x = torch.arange(3.0)
    assert dist.all_reduce_mean(x) is x
    checksums = dist.check_params_in_sync([x, torch.ones(2)])
    assert len(checksums) == 1 and len(checksums[0]) == 2
    dist.barrier()


def test_read_launch_env(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    assert dist.read_launch_env() is None
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_PORT", "4242")
    env = dist.read_launch_env()
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size, env.master_port) == (3, 4, 1, 2, 4242)
    layout = plan_layout(torch.device("cpu"))
    assert layout.world_size == 4 and layout.torchrun == env


def test_plan_layout_on_cpu(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert plan_layout(torch.device("cpu")).world_size == 1
    layout = plan_layout(torch.device("cpu"), num_gpus=3, num_nodes=2, node_rank=1)
    assert (layout.procs_per_node, layout.world_size) == (3, 6)
    assert layout.device_of(2) == torch.device("cpu")
    with pytest.raises(ValueError, match="node_rank"):
        plan_layout(torch.device("cpu"), num_nodes=2, node_rank=2)


def _report(ctx, value):
    return (ctx.rank, ctx.world_size, str(ctx.device), value)


def test_launch_world_size_one_runs_in_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert launch(_report, (7,), plan_layout(torch.device("cpu"))) == (0, 1, "cpu", 7)
