"""Shared fixtures of the depth tests: fixture folder, synthetic MiDaS checkpoint, tiny model."""

import gc
import json
from pathlib import Path

import pytest
from repo_scripts import load_script

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "midas"


@pytest.fixture(scope="session")
def midas_fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def synthetic_midas_ckpt(tmp_path_factory) -> Path:
    """The fixture recipe's deterministic weights as an official-layout .pt (built once, ~20 s, 1.6 GB)."""
    regen = load_script(FIXTURES / "regen_weights.py", "midas_regen_weights")
    path = tmp_path_factory.mktemp("midas") / "dpt_beit_large_512.pt"
    import torch

    with open(FIXTURES / "recipe_dpt_beit_large_512.json") as f:
        recipe = json.load(f)
    state_dict = regen.build_state_dict(recipe)
    torch.save(state_dict, path)
    del state_dict
    gc.collect()
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture()
def tiny_midas():
    from ivid.depth import TINY_ARGS, MidasDepth

    return MidasDepth.random(seed=0, **TINY_ARGS)
