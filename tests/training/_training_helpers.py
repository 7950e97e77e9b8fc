"""Helpers of the training tests: tiny configs with fast settings, a CPU trainer factory."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict

import torch

from ivid.config import build, load_config, validate_config

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

#: trainer overrides that keep the tiny configs fast on a CPU
FAST_TRAINER_ARGS = {"num_workers": 0, "num_sample_images": 0, "sample_steps": 3, "i_log": 2, "i_save": 1000,
                     "i_sample": 1000}


def tiny_config(name: str = "tiny_uncond", **trainer_args: Any) -> Dict[str, Any]:
    """A validated ``configs/<name>.json`` with fast trainer settings (plus ``trainer_args``)."""
    cfg = load_config(REPO_ROOT / "configs" / f"{name}.json")
    cfg["trainer"]["args"].update({**FAST_TRAINER_ARGS, **trainer_args})
    return validate_config(cfg, source=name)


def write_config(path: pathlib.Path, cfg: Dict[str, Any]) -> pathlib.Path:
    path.write_text(json.dumps(cfg, indent=1))
    return path


def make_trainer(cfg: Dict[str, Any], data_dir, output_dir, init_seed: int = 0, **runtime: Any):
    """Build backbone (seeded init), framework, dataset and trainer on CPU, in this process."""
    torch.manual_seed(init_seed)
    backbone = build("backbone", cfg)
    framework = build("framework", cfg, backbone)
    dataset = build("dataset", cfg, str(data_dir))
    runtime = {"device": "cpu", "config": cfg, "show_progress": False, **runtime}
    return build("trainer", cfg, framework, dataset, output_dir=str(output_dir), **runtime)
