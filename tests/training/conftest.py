"""Fixtures of the training tests (helpers live in ``_training_helpers.py``)."""

from __future__ import annotations

import pathlib

import pytest
import torch
from repo_scripts import load_script


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy shared CPU OpenMP
    threads that wait for each other make steps 10-50x slower; use one, then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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
