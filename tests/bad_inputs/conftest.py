"""Fixtures of the bad-input suite (helpers: ``helpers.py``, see its docstring)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest
import torch


def _helpers():
    name = "bad_inputs_helpers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).with_name("helpers.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


H = _helpers()  # test modules use it as sys.modules["bad_inputs_helpers"]
load_tool = H.load_tool


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def sample_tool():
    return load_tool("inference/sample.py")


@pytest.fixture(scope="session")
def render_tool():
    return load_tool("inference/render.py")


@pytest.fixture(scope="session")
def train_tool():
    return load_tool("train.py")


@pytest.fixture(scope="session")
def eval_tool():
    return load_tool("eval.py")


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> pathlib.Path:
    """16 toy images (32x32, ImageNet layout, 4 classes) with exact depths."""
    from ivid.toy import generate_dataset

    root = tmp_path_factory.mktemp("toy")
    generate_dataset(str(root), 16, 32, "imagenet", 4, 0, 1, 1)
    return root


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory) -> pathlib.Path:
    """Two small synthetic scenes (3 views of a tilted plane each) in a ``scenes/`` folder."""
    from ivid.geometry import orbit_modelview
    from ivid.scene import save_scene

    root = tmp_path_factory.mktemp("run") / "scenes"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        views = []
        for yaw in (0.0, 0.2, -0.2):
            yy, xx = np.mgrid[0:16, 0:16]
            views.append({"rgb": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                          "depth": (2.0 + 0.02 * xx + 0.01 * yy).astype(np.float32),
                          "modelview": orbit_modelview(yaw, 0.0), "fov": 45.0})
        save_scene(str(root / f"{name}.npz"), views)
    return root


