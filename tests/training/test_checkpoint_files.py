"""Checkpoint files: reference names, bare float32 state_dicts, weights_only loading, no wrapper prefixes."""

import json
import os

import pytest
import torch
from torch import nn

from ivid.config import build
from ivid.training.checkpoint_files import (ema_filename, find_latest_step, list_steps, misc_filename,
                                            model_filename, strip_prefixes, unwrap)


def test_reference_file_names():
    assert model_filename(5) == "model_step0000005.pt"
    assert ema_filename(0.9999, 50000) == "ema_0.9999_step0050000.pt"
    assert misc_filename(1234567) == "misc_step1234567.pt"


def test_prefixes_and_wrappers_are_stripped():
    sd = {"module._orig_mod.a.weight": 1, "_orig_mod.b": 2, "c.module.d": 3}
    assert list(strip_prefixes(sd)) == ["a.weight", "b", "c.module.d"]
    inner = nn.Linear(2, 2)

    class Compiled(nn.Module):
        def __init__(self):
            super().__init__()
            self._orig_mod = inner

    assert unwrap(Compiled()) is inner


def test_latest_step_needs_a_misc_file(tmp_path):
    for name in ("model_step0000010.pt", "misc_step0000010.pt", "model_step0000020.pt", "misc_step0000005.pt"):
        (tmp_path / name).write_bytes(b"")
    assert list_steps(str(tmp_path)) == [5, 10]
    assert find_latest_step(str(tmp_path)) == 10
    assert find_latest_step(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("use_fp16", [False, True])
def test_saved_files_load_weights_only_and_strictly(toy_data, tmp_path, helpers, use_fp16):
    cfg = helpers.tiny_config("tiny_uncond", max_steps=1, ema_rate=[0.9, 0.999], fp16_mode="inflat_all")
    cfg["backbone"]["args"]["use_fp16"] = use_fp16
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path)
    trainer.run()
    ckpts = tmp_path / "ckpts"
    assert set(os.listdir(ckpts)) == {"ema_0.9_step0000001.pt", "ema_0.999_step0000001.pt",
                                      "misc_step0000001.pt", "model_step0000001.pt"}
    fresh = build("backbone", cfg)
    for name in ("model_step0000001.pt", "ema_0.9_step0000001.pt", "ema_0.999_step0000001.pt"):
        sd = torch.load(ckpts / name, map_location="cpu", weights_only=True)
        assert list(sd) == list(fresh.state_dict())  # bare state_dict, no module./_orig_mod. keys
        assert all(v.dtype == torch.float32 for v in sd.values())
        fresh.load_state_dict(sd, strict=True)
    model_sd = torch.load(ckpts / "model_step0000001.pt", map_location="cpu", weights_only=True)
    names = [n for n, _ in trainer.backbone.named_parameters()]
    assert all(torch.equal(model_sd[n], m.detach()) for n, m in zip(names, trainer.mp.master_params))
    misc = torch.load(ckpts / "misc_step0000001.pt", map_location="cpu", weights_only=True)
    assert misc["step"] == 1 and misc["log2_loss_scale"] == trainer.mp.log2_scale
    assert json.loads(misc["config_json"])["backbone"] == cfg["backbone"]
    assert set(misc["rng_states"][0]) >= {"python", "numpy", "torch_cpu"}
    assert misc["data"]["batch_in_epoch"] == 1 and len(misc["optimizer"]["state"]) == len(names)
