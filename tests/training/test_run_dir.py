"""Run-folder helpers: resolved defaults, JSON-safe log lines."""

import json
import math

import torch

from ivid.config import load_config
from ivid.training.run_dir import JsonlLog, resolve_defaults, to_jsonable


def test_resolve_defaults_fills_constructor_defaults_only(repo_root):
    cfg = load_config(repo_root / "configs" / "tiny_uncond.json")
    resolved = resolve_defaults(cfg)
    trainer = resolved["trainer"]["args"]
    assert trainer["max_steps"] == cfg["trainer"]["args"]["max_steps"]
    assert trainer["seed"] == 0 and trainer["sample_guidance"] == 3.0 and trainer["sample_with"] == "ema"
    for runtime in ("output_dir", "framework", "dataset", "device", "config", "load_dir"):
        assert runtime not in trainer
    assert "data_dir" not in resolved["dataset"]["args"]
    assert json.loads(json.dumps(resolved)) == resolved
    assert resolve_defaults(resolved) == resolved  # idempotent


def test_log_lines_are_json(tmp_path):
    log = JsonlLog(str(tmp_path / "sub" / "log.jsonl"))
    log.write({"step": 1, "loss": torch.tensor(0.5), "scale": float("inf"), "nested": {"x": [torch.tensor(2)]}})
    log.write({"step": 2, "loss": float("nan")})
    lines = [json.loads(line) for line in (tmp_path / "sub" / "log.jsonl").read_text().splitlines()]
    assert lines == [{"step": 1, "loss": 0.5, "scale": "inf", "nested": {"x": [2]}}, {"step": 2, "loss": "nan"}]
    assert to_jsonable((1.0, math.inf)) == [1.0, "inf"]
