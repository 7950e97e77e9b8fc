"""Fixtures shared by the UNet tests."""

import json

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    """The reference UNet case: ``(io, backbone args, state_dict)`` of the small 10-channel fixture model
    (inputs and the reference implementation's outputs in ``io``)."""
    d = fixtures_dir / "unet"
    io = dict(np.load(d / "small_cond10_io.npz", allow_pickle=False))
    args = json.loads((d / "small_cond10_config.json").read_text())["backbone"]["args"]
    state_dict = torch.load(d / "small_cond10_state_dict.pt", map_location="cpu", weights_only=True)
    return io, args, state_dict
