"""MiDaS input transform / output resize against the stated rule and a naive bicubic reference."""

import numpy as np
import pytest
import torch

from ivid.depth.transforms import compute_input_size, resize_prediction, transform_image


@pytest.mark.parametrize("size, expected", [
    ((384, 512), (384, 512)),    # fixture case A: unchanged
    ((480, 640), (512, 672)),    # height scale 1.0667 is closer to 1 than 0.8
    ((640, 480), (672, 512)),
    ((512, 512), (512, 512)),
    ((1000, 1500), (512, 768)),  # downscale: 0.512 beats 0.341
    ((375, 500), (384, 512)),    # typical ImageNet landscape: width scale 1.024 wins
    ((500, 375), (512, 384)),
    ((100, 200), (256, 512)),    # upscale: width scale 2.56 is closer to 1 than 5.12
])
def test_input_size_examples(size, expected):
    assert compute_input_size(*size) == expected


def test_input_size_ties_follow_float_arithmetic():
    # Exact ties only happen for square images (equal scales).
    assert compute_input_size(300, 300) == (512, 512)
    # Mathematical ties (512/H + 512/W == 2) are decided by float64 rounding, as in MiDaS:
    # |1 - 512/384| = 0.33333333333333326 < |1 - 512/768| = 0.33333333333333337 -> height scale
    assert compute_input_size(384, 768) == (512, 1024)
    assert compute_input_size(768, 384) == (1024, 512)
    # |1 - 512/320| = 0.6000000000000001 > |1 - 512/1280| = 0.6 -> width scale 0.4
    assert compute_input_size(320, 1280) == (128, 512)
    assert compute_input_size(1280, 320) == (512, 128)


def test_input_size_rounds_half_to_even():
    # scale 1 on one side, the other side an odd multiple of 16: n + 0.5 -> even n
    assert compute_input_size(336, 512) == (320, 512)    # 10.5 -> 10 (half-up would give 352)
    assert compute_input_size(528, 512) == (512, 512)    # 16.5 -> 16 (half-up: 544)
    assert compute_input_size(560, 512) == (576, 512)    # 17.5 -> 18
    assert compute_input_size(512, 336) == (512, 320)
    assert compute_input_size(512, 528) == (512, 512)


def test_input_size_multiple_of_and_target():
    for h, w in [(123, 457), (999, 1), (17, 3000), (300, 301)]:
        out = compute_input_size(h, w, target=384)
        assert out[0] % 32 == 0 and out[1] % 32 == 0
        assert 384 in out                      # one side always hits the target exactly
    assert compute_input_size(999, 1, target=384) == (384, 32)   # would round to 0: raised to 32


def _cubic_weights(t, a=-0.75):
    """Keys cubic weights for taps at offsets -1, 0, 1, 2 from floor(src)."""
    def k(x):
        x = np.abs(x)
        return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                        np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))
    return np.stack([k(t + 1), k(t), k(1 - t), k(2 - t)], -1)


def _resize_axis(x, out, axis):
    """Naive bicubic resize along ``axis`` (half-pixel centres, clamped border, no antialias)."""
    n = x.shape[axis]
    src = (np.arange(out) + 0.5) * n / out - 0.5
    i0 = np.floor(src).astype(int)
    w = _cubic_weights(src - i0)
    taps = np.clip(i0[:, None] + np.arange(-1, 3)[None], 0, n - 1)
    moved = np.moveaxis(x, axis, 0)
    res = np.einsum("ok,ok...->o...", w, moved[taps])
    return np.moveaxis(res, 0, axis)


def naive_bicubic(img, size):
    return _resize_axis(_resize_axis(img, size[0], 0), size[1], 1)


@pytest.mark.parametrize("shape", [(48, 80), (70, 50), (64, 64), (20, 30)])
def test_transform_matches_naive_bicubic(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    target = 64
    size = compute_input_size(*shape, target=target)
    x = transform_image(image, target=target)
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 3) + size
    want = (naive_bicubic(image.astype(np.float64) / 255.0, size) - 0.5) / 0.5
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), want, atol=1e-5)


def test_transform_keeps_overshoot():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255                         # hard edge -> bicubic over/undershoot
    x = transform_image(image, target=64)
    assert x.min() < -1.0 and x.max() > 1.0


def test_transform_rejects_bad_input():
    with pytest.raises(ValueError, match="RGB uint8"):
        transform_image(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        transform_image(np.zeros((8, 8, 3), np.float32))


def test_resize_prediction_matches_naive_bicubic():
    rng = np.random.default_rng(1)
    pred = rng.random((2, 32, 64)).astype(np.float32)
    out = resize_prediction(torch.from_numpy(pred), (45, 70))
    assert out.shape == (2, 45, 70) and out.dtype == torch.float32
    for i in range(2):
        np.testing.assert_allclose(out[i].numpy(), naive_bicubic(pred[i].astype(np.float64), (45, 70)), atol=1e-5)
    same = resize_prediction(torch.from_numpy(pred), (32, 64))
    np.testing.assert_array_equal(same.numpy(), pred)
