"""Global RNG snapshots are plain tensors and restore every generator."""

import random

import numpy as np
import torch

from ivid.training.rng import capture_rng_state, restore_rng_state


def _draw():
    return (random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()),
            torch.rand(3).tolist())


def test_capture_restore_round_trip():
    random.gauss(0, 1)  # leave a cached gaussian behind
    np.random.randn()
    state = capture_rng_state(torch.device("cpu"))
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    first = _draw()
    _draw()
    restore_rng_state(state, torch.device("cpu"))
    assert _draw() == first
