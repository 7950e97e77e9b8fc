"""Shared pytest fixtures: paths, CPU device, seeded generators, GPU marker handling."""

from __future__ import annotations

import pathlib
import sys

import pytest
import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# test modules import the shared helper ``repo_scripts`` (the suite runs with --import-mode=importlib)
sys.path.insert(0, str(REPO_ROOT / "tests"))
FIXTURES = REPO_ROOT / "tests" / "fixtures"
CONFIGS = REPO_ROOT / "configs"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never touch the network: the Hugging Face Hub counts as unreachable unless a test says otherwise."""
    import ivid.model_loading

    monkeypatch.setattr(ivid.model_loading, "hub_reachable", lambda timeout=None: (False, "network disabled in tests"))


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
    return FIXTURES


@pytest.fixture(scope="session")
def configs_dir() -> pathlib.Path:
    return CONFIGS


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
