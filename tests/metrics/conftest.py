"""Shared helpers for the metrics tests: tiny image folders and small deterministic extractors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


class ToyFeatures(nn.Module):
    """Deterministic features: 4x4 average pool of the [0, 255] image, fixed random projection to ``dim``."""

    name = "toy-projection"

    def __init__(self, dim: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(48, dim, generator=g))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        pooled = F.adaptive_avg_pool2d(x / 255.0, 4).flatten(1)
        return torch.tanh(pooled @ self.weight)


class ToyLogits(ToyFeatures):
    """Deterministic 10-class logits (a second projection, scaled so some images are confident)."""

    name = "toy-logits"

    def __init__(self):
        super().__init__(dim=10, seed=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        pooled = F.adaptive_avg_pool2d(x / 255.0 - 0.5, 4).flatten(1)
        return 4.0 * pooled @ self.weight


def write_images(folder, count, size, seed=0, ext=".png", mode="RGB", subdir_every=0):
    """``count`` random smooth images (``size`` = (W, H) or S) under ``folder``; returns their paths."""
    rng = np.random.default_rng(seed)
    w, h = (size, size) if isinstance(size, int) else size
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        coarse = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
        noise = rng.integers(-20, 21, size=(h, w, 3))
        img = Image.fromarray(np.clip(np.asarray(img, np.int64) + noise, 0, 255).astype(np.uint8))
        sub = f"group{i % subdir_every}" if subdir_every else ""
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        path = os.path.join(folder, sub, f"img{i:03d}{ext}")
        img.convert(mode).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def toy_features() -> ToyFeatures:
    return ToyFeatures()


@pytest.fixture
def toy_logits() -> ToyLogits:
    return ToyLogits()


@pytest.fixture
def folders(tmp_path):
    """Real: 24 non-square 48x40 images in sub-folders (png/JPG); fake: 30 32x32 pngs; image size 32."""
    real = tmp_path / "data" / "real"
    write_images(real, 16, (48, 40), seed=1, subdir_every=3)
    write_images(real / "more", 8, (48, 40), seed=2, ext=".JPG")
    fake = tmp_path / "samples" / "fake"
    write_images(fake, 30, 32, seed=3)
    return str(real), str(fake)
