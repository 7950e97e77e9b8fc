"""BasicTrainer on the toy set: exact resume, skipped fp16 steps, run folder and JSONL log."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x.detach(), y.detach()) for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.parametrize("fp16_mode", [None, "inflat_all"])
def test_resume_continues_exactly(toy_data, tmp_path, helpers, fp16_mode):
    """N steps, stop, resume to M == M uninterrupted steps (every parameter, EMA, optimizer state)."""
    # 32 images / batch 4 = 8 batches per epoch: the runs cross an epoch boundary after the resume
    args = dict(batch_size_per_gpu=4, batch_split=2, fp16_mode=fp16_mode, ema_rate=[0.9, 0.99], learning_rate=1e-3)
    full = helpers.make_trainer(helpers.tiny_config("tiny_uncond", max_steps=10, **args), toy_data, tmp_path / "full")
    full.run()
    first = helpers.make_trainer(helpers.tiny_config("tiny_uncond", max_steps=5, **args), toy_data, tmp_path / "part")
    first.run()
    torch.manual_seed(1234)  # disturb the global RNGs: the resume must restore them
    np.random.seed(99)
    resumed = helpers.make_trainer(helpers.tiny_config("tiny_uncond", max_steps=10, **args), toy_data,
                                   tmp_path / "part", init_seed=77, load_dir=str(tmp_path / "part"))
    assert resumed.step == 5
    resumed.run()
    assert resumed.stream.epoch == full.stream.epoch == 1
    assert _same(full.mp.master_params, resumed.mp.master_params)
    assert _same(list(full.backbone.parameters()), list(resumed.backbone.parameters()))
    for rate in (0.9, 0.99):
        assert _same(full.ema.params[rate], resumed.ema.params[rate])
    assert not _same(full.ema.params[0.9], full.mp.master_params)  # the EMA really averages
    exp_avg = [s["exp_avg"] for s in full.optimizer.state.values()]
    assert _same(exp_avg, [s["exp_avg"] for s in resumed.optimizer.state.values()])
    assert full.mp.log2_scale == resumed.mp.log2_scale
    log = [json.loads(line) for line in open(tmp_path / "part" / "log.jsonl")]
    assert log[[r.get("event") for r in log].index("resume")]["files"][-1].endswith("misc_step0000005.pt")


def test_injected_inf_gradient_is_skipped(toy_data, tmp_path, helpers):
    """float32 weights (use_fp16 false) with fp16_mode inflat_all: as the reference, no loss scale at all
    (the mode is switched off); a non-finite step is still skipped (ours) and the scale stays 0."""
    cfg = helpers.tiny_config("tiny_uncond", max_steps=2, fp16_mode="inflat_all", ema_rate=[0.9])
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path)
    assert trainer.mp.mode == "none" and trainer.mp.requested_mode == "inflat_all"
    assert trainer.mp.log2_scale == 0.0
    params = [p.detach().clone() for p in trainer.mp.master_params]
    ema = [p.clone() for p in trainer.ema.params[0.9]]
    weight = trainer.backbone.out[2].weight
    handle = weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    info = trainer.run_step(trainer.prepare_batch(trainer.stream.next()))
    assert info["stepped"] == 0.0
    assert trainer.mp.log2_scale == 0.0 and trainer.skipped_total == 1
    assert _same(params, trainer.mp.master_params) and _same(ema, trainer.ema.params[0.9])
    assert len(trainer.optimizer.state) == 0  # AdamW never stepped
    handle.remove()
    info = trainer.run_step(trainer.prepare_batch(trainer.stream.next()))
    assert info["stepped"] == 1.0
    assert trainer.mp.log2_scale == 0.0  # no scale to grow
    assert not _same(params, trainer.mp.master_params)


def test_run_folder_log_and_samples(toy_data, tmp_path, helpers):
    cfg = helpers.tiny_config("tiny_uncond", max_steps=4, i_log=2, i_sample=4, num_sample_images=2,
                              sample_steps=2)
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path, command="python train.py --test")
    summary = trainer.run()
    assert summary == {"step": 4, "stopped": False, "skipped_steps": 0}
    for name in ("config.json", "command.txt", "env.txt", "params.txt", "log.jsonl"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "config.json").read_text()) == cfg
    assert (tmp_path / "command.txt").read_text().strip() == "python train.py --test"
    assert "world_size=1" in (tmp_path / "env.txt").read_text()
    assert "209,876 parameters" in (tmp_path / "params.txt").read_text()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert r["loss"] > 0 and r["step_time"] > 0 and r["samples_per_s"] > 0 and r["lr"] == 1e-4
        assert r["skipped_steps"] == 0 and r["data_failures"]["count"] == 0 and len(r["param_checksums"]) == 1
    assert sorted(os.listdir(tmp_path / "samples")) == ["step0000000.png", "step0000004.png"]
    grid = np.asarray(Image.open(tmp_path / "samples" / "step0000004.png"))
    # 2 columns of 32x32 tiles; rows: sample rgb, sample depth, data rgb, data depth; 2-px padding
    assert grid.shape == (4 * 34 + 2, 2 * 34 + 2, 3)
    assert sorted(os.listdir(tmp_path / "ckpts"))[-1] == "model_step0000004.pt"


def test_data_failures_are_counted_and_logged(toy_data, tmp_path, helpers):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    broken = sorted((data / "depths").rglob("*.npz"))[:3]
    for path in broken:
        path.write_bytes(b"not an npz file")
    cfg = helpers.tiny_config("tiny_uncond", max_steps=8, i_log=8, batch_size_per_gpu=4)
    helpers.make_trainer(cfg, data, tmp_path / "run").run()
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    failures = record["data_failures"]
    assert failures["count"] == 3  # one epoch: each broken file met once
    assert sorted(failures["paths"]) == sorted(str(p) for p in broken)


def test_batch_options_are_checked(toy_data, tmp_path, helpers):
    cfg = helpers.tiny_config("tiny_uncond", batch_size_per_gpu=4, batch_split=3)
    with pytest.raises(ValueError, match="batch_split"):
        helpers.make_trainer(cfg, toy_data, tmp_path)
    cfg = helpers.tiny_config("tiny_uncond", batch_size=8)
    with pytest.raises(ValueError, match="exactly one of batch_size"):
        helpers.make_trainer(cfg, toy_data, tmp_path)


def test_bf16_mode_trains_with_float32_weights(toy_data, tmp_path, helpers):
    cfg = helpers.tiny_config("tiny_uncond", max_steps=2, fp16_mode="bf16")
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path)
    before = [p.detach().clone() for p in trainer.mp.master_params]
    info = trainer.run_step(trainer.prepare_batch(trainer.stream.next()))
    assert info["stepped"] == 1.0 and torch.isfinite(info["loss"]) and trainer.mp.log2_scale == 0.0
    assert all(p.dtype == torch.float32 for p in trainer.backbone.parameters())
    assert not _same(before, trainer.mp.master_params)


def test_reference_trainer_arguments(toy_data, tmp_path, helpers):
    """A bare float ema_rate (one EMA, file ema_<rate>_step*), batch_split null (= 1), i_print, i_ddpcheck."""
    cfg = helpers.tiny_config("tiny_uncond", max_steps=2, ema_rate=0.99, batch_split=None, i_print=2,
                              i_ddpcheck=None, i_save=2)
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path)
    assert trainer.ema.rates == [0.99] and trainer.batch_split == 1 and trainer.i_print == 2
    assert trainer.check_sync_every is None
    trainer.run()
    assert (tmp_path / "ckpts" / "ema_0.99_step0000002.pt").is_file()
    defaults = helpers.make_trainer(helpers.tiny_config("tiny_uncond", max_steps=1), toy_data, tmp_path / "d")
    assert defaults.check_sync_every == 10000  # i_ddpcheck's default, as the reference
