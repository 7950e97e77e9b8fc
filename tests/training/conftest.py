"""Fixtures of the training tests (helpers live in ``_training_helpers.py``)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_script(relative: str, name: str):
    """Import a repository script (``train.py``, ``scripts/*.py``) as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> pathlib.Path:
    """32 toy images (32x32, ImageNet layout, 4 classes) made with ``scripts/make_toy_dataset.py``."""
    script = load_script("scripts/make_toy_dataset.py", "make_toy_dataset")
    root = tmp_path_factory.mktemp("toy")
    script.main(script.parse_args(["--output_dir", str(root), "--num_images", "32", "--image_size", "32",
                                   "--layout", "imagenet", "--num_classes", "4", "--num_workers", "1"]))
    return root


@pytest.fixture(scope="session")
def train_cli():
    """The ``train.py`` module (``parse_args`` / ``main``)."""
    return load_script("train.py", "ivid_train_cli")


@pytest.fixture(scope="session")
def helpers():
    """``_training_helpers`` (tiny_config, make_trainer, write_config, FAST_TRAINER_ARGS)."""
    return load_script("tests/training/_training_helpers.py", "_training_helpers")
