"""Per-grid relative position bias (MiDaS rule) and the tiny model's shapes on many grids."""

import numpy as np
import pytest
import torch
from timm.models.beit import gen_relative_position_index

from ivid.depth import TINY_ARGS, MidasDepth
from ivid.depth.backbone import grid_relative_position_bias


def _naive_bilinear(grid, out_h, out_w):
    """align_corners=False bilinear of an (h, w) array, source coordinates clamped at 0 (PyTorch rule)."""
    def axis(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0
    r0, r1, fr = axis(grid.shape[0], out_h)
    c0, c1, fc = axis(grid.shape[1], out_w)
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
    bottom = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bottom * fr[:, None]


def _naive_bias(table, window, grid):
    """bias[h, p, q] built token pair by token pair from the resized offset grid (cls rows last)."""
    old_h, old_w = 2 * window[0] - 1, 2 * window[1] - 1
    gh, gw = grid
    heads = table.shape[1]
    offsets = table[: old_h * old_w].reshape(old_h, old_w, heads)
    resized = np.stack([_naive_bilinear(offsets[..., k], 2 * gh - 1, 2 * gw - 1) for k in range(heads)])
    n = gh * gw + 1
    bias = np.zeros((heads, n, n))
    for p in range(gh * gw):
        for q in range(gh * gw):
            dr = p // gw - q // gw
            dc = p % gw - q % gw
            bias[:, 1 + p, 1 + q] = resized[:, dr + gh - 1, dc + gw - 1]
    bias[:, 0, 1:] = table[-3][:, None]      # cls -> token
    bias[:, 1:, 0] = table[-2][:, None]      # token -> cls
    bias[:, 0, 0] = table[-1]                # cls -> cls
    return bias


@pytest.mark.parametrize("grid", [(3, 5), (5, 3), (2, 2), (6, 4)])
def test_grid_bias_matches_naive(grid):
    window = (4, 4)
    table = torch.randn((2 * 4 - 1) ** 2 + 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bias = grid_relative_position_bias(table, window, grid, gen_relative_position_index(grid))
    n = grid[0] * grid[1] + 1
    assert bias.shape == (1, 3, n, n)
    np.testing.assert_allclose(bias[0].numpy(), _naive_bias(table.numpy(), window, grid), atol=1e-12)


def test_grid_bias_is_timm_bias_on_the_trained_grid():
    from timm.models.beit import Attention

    attn = Attention(16, num_heads=2, qkv_bias=True, window_size=(4, 4))
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(generator=torch.Generator().manual_seed(1))
    ours = grid_relative_position_bias(attn.relative_position_bias_table, (4, 4), (4, 4),
                                       gen_relative_position_index((4, 4)))
    torch.testing.assert_close(ours, attn._get_rel_pos_bias(), rtol=0, atol=0)


def test_tables_untouched_and_shapes_on_many_grids(tiny_midas):
    tables = [b.attn.relative_position_bias_table.detach().clone() for b in tiny_midas.backbone.model.blocks]
    with torch.inference_mode():
        for h, w in [(64, 64), (32, 96), (96, 32), (48, 80), (512, 672)]:   # grids incl. odd (3 x 5)
            out = tiny_midas(torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h)))
            assert out.shape == (1, h, w)
            assert (out >= 0).all()
    for before, block in zip(tables, tiny_midas.backbone.model.blocks):
        assert torch.equal(before, block.attn.relative_position_bias_table)
        assert block.attn.relative_position_bias_table.shape == ((2 * 4 - 1) ** 2 + 3, 2)


def test_batch_equals_single(tiny_midas):
    x = torch.randn(3, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        batched = tiny_midas(x)
        single = torch.cat([tiny_midas(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_rejects_sizes_not_multiple_of_16(tiny_midas):
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny_midas(torch.zeros(1, 3, 40, 64))


def test_random_is_deterministic():
    a = MidasDepth.random(seed=3, **TINY_ARGS).state_dict()
    b = MidasDepth.random(seed=3, **TINY_ARGS).state_dict()
    c = MidasDepth.random(seed=4, **TINY_ARGS).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_predict_returns_image_size(tiny_midas):
    image = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    depth = tiny_midas.predict(image)
    assert depth.shape == (45, 70) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.std() > 0
    np.testing.assert_allclose(tiny_midas.predict_batch(tiny_midas.transform(image), [(45, 70)])[0], depth)
    with pytest.raises(ValueError, match="precision"):
        tiny_midas.predict(image, precision="fp8")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_matches_cpu(tiny_midas, precision):
    image = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    cpu = tiny_midas.predict(image)
    gpu = tiny_midas.to("cuda").predict(image, precision=precision)
    tol = 1e-4 if precision == "fp32" else 5e-2
    np.testing.assert_allclose(gpu, cpu, atol=tol, rtol=tol)
