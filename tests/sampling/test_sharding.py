"""Sampling under torchrun: rank layout, the order of the ranks' steps, and 2 CPU ranks = 1 process, file by file."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ivid.sampling import sharding
from ivid.sampling.sharding import ShardFailed, run_shard, torchrun_shard

ROOT = pathlib.Path(__file__).resolve().parents[2]
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def test_rank_layout_from_torchrun_variables(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    assert torchrun_shard(None) is None and sharding.is_main_process()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name, value in zip(TORCHRUN_VARS, ("3", "4", "1", "2", "10.0.0.1", "29511")):
        monkeypatch.setenv(name, value)
    shard = torchrun_shard(None)
    assert (shard.rank, shard.world_size, shard.local_rank, shard.local_world_size) == (3, 4, 1, 2)
    assert shard.device == torch.device("cpu") and not shard.is_main and not sharding.is_main_process()
    assert (shard.master_addr, shard.master_port) == ("10.0.0.1", 29511)
    assert torchrun_shard("cpu").device == torch.device("cpu")


class _FakeShard:
    """A rank whose collectives are scripted: ``answers`` are what the other ranks say."""

    def __init__(self, rank, answers):
        self.rank, self.is_main, self.answers, self.calls = rank, rank == 0, list(answers), []

    def agree(self, ok):
        self.calls.append(ok)
        return self.answers.pop(0) and ok


class _Plan:
    run_dir = "/nonexistent/run"


def test_rank_steps_and_their_agreement(monkeypatch):
    monkeypatch.setattr(sharding, "remove_run_temps", lambda run_dir: events.append(("temps", run_dir)))
    events = []
    main = _FakeShard(0, [True, True])
    plan = run_shard(main, lambda: events.append("prepare") or _Plan(), lambda p: events.append("work"))
    assert isinstance(plan, _Plan) and main.calls == [True, True]
    assert events == ["prepare", ("temps", "/nonexistent/run"), "work"]

    other = _FakeShard(1, [False])  # rank 0 could not prepare: the others stop at once, sample nothing
    with pytest.raises(ShardFailed, match="rank 0 refused"):
        run_shard(other, lambda: pytest.fail("must not prepare"), lambda p: pytest.fail("must not sample"))

    failing = _FakeShard(1, [True, True])  # this rank's share fails: it tells the others, then raises its own error
    with pytest.raises(KeyError):
        run_shard(failing, _Plan, lambda p: {}["boom"])
    assert failing.calls == [True, False]

    fine = _FakeShard(1, [True, False])  # another rank's share failed
    with pytest.raises(ShardFailed, match="another rank failed"):
        run_shard(fine, _Plan, lambda p: None)


def _outputs(run_dir):
    """Every output file's content (PNG pixels, NPZ arrays), run records excluded."""
    found = {}
    for root, _, files in os.walk(run_dir):
        for name in files:
            path = os.path.join(root, name)
            key = os.path.relpath(path, run_dir)
            if name.endswith(".png"):
                with Image.open(path) as im:
                    found[key] = [np.asarray(im)]
            elif name.endswith(".npz"):
                with np.load(path, allow_pickle=False) as data:
                    found[key] = [data[k] for k in sorted(data.files)]
    return found


def _env():
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env.update(PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES="")
    return env


OPTIONS = ["--preset", "demo", "--seeds", "0-3", "--viewset", "random", "--steps_uncond", "10", "--steps_cond", "3",
           "--no_progress"]


@pytest.mark.slow
def test_two_cpu_ranks_under_torchrun_write_what_one_process_writes(tmp_path):
    sample = str(ROOT / "inference" / "sample.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    ranks = subprocess.run(torchrun + [sample, *OPTIONS, "--output_dir", str(tmp_path / "ranks")], cwd=ROOT,
                           env=_env(), capture_output=True, text=True, timeout=600)
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    assert ranks.stdout.count("samples written to") == 1  # printed by rank 0 only
    single = subprocess.run([sys.executable, sample, *OPTIONS, "--output_dir", str(tmp_path / "single")], cwd=ROOT,
                            env=_env(), capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    name = "viewset_random_steps_u10_c3_guidance3.0"
    a, b = _outputs(tmp_path / "ranks" / name), _outputs(tmp_path / "single" / name)
    assert len(a) == 4 * 6 and sorted(a) == sorted(b)  # grids x2, conds x2, results, scenes per sample
    for key in a:
        assert all(np.array_equal(x, y) for x, y in zip(a[key], b[key])), key
    run_dir = tmp_path / "ranks" / name
    assert (run_dir / "args.json").is_file() and len((run_dir / "command.txt").read_text().splitlines()) == 1
    leftovers = [p for p in run_dir.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert not leftovers

    # a bad option: every rank stops with an error at once (no hang), nothing is written
    bad = subprocess.run(torchrun + [sample, *OPTIONS, "--precision", "fp16", "--output_dir", str(tmp_path / "bad")],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "error: --precision fp16: needs a CUDA GPU" in bad.stderr
    assert not (tmp_path / "bad").exists()
