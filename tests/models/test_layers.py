"""ivid.models.layers: float32 GroupNorm for half inputs, sinusoidal timestep encoding layout."""

import math

import torch

from ivid.models.layers import GroupNorm32, PosEncoding, timestep_frequencies, zero_module


def test_groupnorm32_computes_in_float32_and_returns_input_dtype():
    torch.manual_seed(0)
    norm = GroupNorm32(2, 8)
    x = (torch.randn(2, 8, 4, 4) * 50 + 300).half()
    out = norm(x)
    assert out.dtype == torch.float16
    expected = torch.nn.functional.group_norm(x.float(), 2, norm.weight, norm.bias, norm.eps).half()
    assert torch.equal(out, expected)
    assert norm(x.double()).dtype == torch.float64


def test_pos_encoding_layout_cos_first():
    enc = PosEncoding(8)
    t = torch.tensor([0, 3])
    out = enc(t)
    freqs = [math.exp(-math.log(10000) * k / 4) for k in range(4)]
    expected = [[math.cos(3 * f) for f in freqs] + [math.sin(3 * f) for f in freqs]]
    torch.testing.assert_close(out[1:], torch.tensor(expected), atol=1e-6, rtol=0)
    assert torch.equal(out[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert "freqs" in enc.state_dict()
    torch.testing.assert_close(timestep_frequencies(8), torch.tensor(freqs))


def test_zero_module():
    conv = zero_module(torch.nn.Conv2d(2, 3, 3))
    assert all(bool((p == 0).all()) for p in conv.parameters())
