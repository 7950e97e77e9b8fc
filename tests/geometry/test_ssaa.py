"""SSAA reduction: Pillow-exact LANCZOS, truncation, centre sub-pixel, coverage masks."""

import numpy as np
import pytest
import torch
from PIL import Image

from ivid.geometry.renderer.ssaa import (coverage_mask, downsample_color, lanczos_resize_uint8, pick_subpixel,
                                         to_uint8_trunc)


@pytest.mark.parametrize("shape,size", [((384, 384), (128, 128)), ((640, 640), (128, 128)), ((96, 60), (32, 20)),
                                        ((37, 53), (11, 17)), ((30, 40), (60, 80)), ((9, 9), (3, 3))])
def test_lanczos_equals_pillow(shape, size):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    reference = np.asarray(Image.fromarray(image).resize(size[::-1], Image.LANCZOS))
    out = lanczos_resize_uint8(torch.from_numpy(image), size)
    assert out.dtype == torch.uint8
    np.testing.assert_array_equal(out.numpy(), reference)


def test_lanczos_batched_and_extreme_values():
    images = np.zeros((2, 48, 48, 3), np.uint8)
    images[0, ::2] = 255  # stripes: maximal ringing, clamped at 0 / 255
    images[1, :, 24:] = 255
    out = lanczos_resize_uint8(torch.from_numpy(images), (16, 16)).numpy()
    for k in range(2):
        np.testing.assert_array_equal(out[k], np.asarray(Image.fromarray(images[k]).resize((16, 16), Image.LANCZOS)))


def test_truncation_not_rounding():
    values = torch.tensor([0.0, 0.999 / 255, 1.999 / 255, 0.5, 1.0, 1.5, -0.1])
    assert to_uint8_trunc(values).tolist() == [0, 0, 1, 127, 255, 255, 0]
    color = torch.full((6, 6, 3), 0.5)
    assert (downsample_color(color, 3) == 127).all()


def test_pick_subpixel_and_coverage():
    values = torch.arange(36.0).view(6, 6, 1)
    assert pick_subpixel(values, 3)[..., 0].tolist() == [[7.0, 10.0], [25.0, 28.0]]
    assert pick_subpixel(torch.arange(100.0).view(10, 10, 1), 5)[..., 0].tolist() == [[22.0, 27.0], [72.0, 77.0]]
    covered = torch.zeros(2, 3, 6, dtype=torch.bool)
    covered[0, :, :3] = True  # 9 of 9
    covered[0, :, 3:] = True
    covered[0, 0, 3:5] = False  # 7 of 9 -> valid (> 6.75)
    covered[1, :2, :3] = True  # 6 of 9 -> not valid
    mask = coverage_mask(covered, 3)
    assert mask[:, 0].tolist() == [[True, True], [False, False]]
