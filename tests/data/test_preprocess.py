"""Disparity -> depth code numbers (docs/design.md#training-data formulas) and image / depth transforms."""

import numpy as np
import pytest
from PIL import Image

from ivid.data.preprocess import (
    DataFileError,
    disparity_to_depth_code,
    load_depth01,
    load_rgb01,
    load_rgbd01,
    normalize_rgbd,
    read_disparity,
    unnormalize_rgbd,
)

NEAR, FAR = 0.5, 100.0


def _zbuffer_of_depth(d):
    """docs/conventions.md: z = (1/near - 1/d) / (1/near - 1/far), d clipped to [near, far]."""
    d = np.clip(np.asarray(d, np.float64), NEAR, FAR)
    return (1 / NEAR - 1 / d) / (1 / NEAR - 1 / FAR)


def test_zbuffer_of_plain_disparity():
    depth = np.array([[0.8, 1.0], [2.0, 50.0]])
    arr_0 = 6250.0 / depth  # max disparity 1.25 < 1/near: no rescaling
    z = disparity_to_depth_code(arr_0, NEAR, FAR, "z_buffer")
    assert z.dtype == np.float32 and z.shape == (2, 2)
    np.testing.assert_allclose(z, _zbuffer_of_depth(depth), atol=1e-6)
    # hand numbers: d = 1 -> (2 - 1) / 1.99
    assert z[0, 1] == pytest.approx(1 / 1.99, abs=1e-6)


def test_zbuffer_rescales_when_nearer_than_near():
    depth = np.array([0.25, 1.0, 4.0])  # disparities 4, 1, 0.25; max 4 > 1/near = 2
    z = disparity_to_depth_code(6250.0 / depth, NEAR, FAR)
    # disp /= max(disp) * near = 2 -> 2, 0.5, 0.125 -> depths 0.5, 2, 8
    np.testing.assert_allclose(z, _zbuffer_of_depth([0.5, 2.0, 8.0]), atol=1e-6)
    assert z[0] == pytest.approx(0.0, abs=1e-7)


def test_zbuffer_floor_and_clip():
    z = disparity_to_depth_code(np.array([0.0, 6250.0 / 200.0]), NEAR, FAR)
    # disp 0 -> floored at 1e-3 (depth 1000 > far) and depth 200 > far: both clip to 1
    np.testing.assert_allclose(z, [1.0, 1.0])


def test_linear_code():
    depth = np.array([0.5, 1.0, 25.0])
    z = disparity_to_depth_code(6250.0 / depth, NEAR, FAR, "linear")
    np.testing.assert_allclose(z, (depth - NEAR) / (FAR - NEAR), rtol=1e-5, atol=1e-7)


def test_reference_preprocess_modes():
    """The reference's prepocess_depth modes, after the same disparity normalisation (here: max 4 > 1/near,
    so disp /= 2 -> 2, 0.5, 0.125, 0.02)."""
    depth = np.array([0.25, 1.0, 4.0, 25.0])
    disp = np.array([2.0, 0.5, 0.125, 0.02])
    arr_0 = 6250.0 / depth
    np.testing.assert_allclose(disparity_to_depth_code(arr_0, NEAR, FAR, "none"), disp, rtol=1e-6)
    np.testing.assert_allclose(disparity_to_depth_code(arr_0, NEAR, FAR, "to_depth"), 1 / disp, rtol=1e-6)
    np.testing.assert_allclose(disparity_to_depth_code(arr_0, NEAR, FAR, "disparity_minmax"),
                               (disp - 0.02) / (2.0 - 0.02), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(disparity_to_depth_code(arr_0, NEAR, FAR, "depth_minmax"),
                               (1 / disp - 0.5) / (50.0 - 0.5), rtol=1e-6, atol=1e-7)
    flat = disparity_to_depth_code(np.full((2, 2), 100.0), NEAR, FAR, "disparity_minmax")
    assert np.array_equal(flat, np.zeros((2, 2)))  # constant map: zeros, not a division by zero
    with pytest.raises(ValueError, match="preprocess_depth"):
        disparity_to_depth_code(arr_0, NEAR, FAR, "disparity")


def test_float16_storage_roundtrip(tmp_path):
    depth = np.linspace(0.6, 3.5, 64).reshape(8, 8)
    np.savez_compressed(tmp_path / "d.npz", arr_0=(6250.0 / depth).astype(np.float16))
    z = disparity_to_depth_code(read_disparity(tmp_path / "d.npz"), NEAR, FAR)
    np.testing.assert_allclose(z, _zbuffer_of_depth(depth), atol=1e-3)


def _save(tmp_path, array, name, mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_resize_shorter_side_and_center_crop(tmp_path):
    # 20 (h) x 40 (w): left quarter red, middle half green, right quarter blue
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10, 0] = 255
    img[:, 10:30, 1] = 255
    img[:, 30:, 2] = 255
    rgb = load_rgb01(_save(tmp_path, img, "a.png"), 10)  # resized to 20 x 10, crop columns 5..15
    assert rgb.shape == (10, 10, 3) and rgb.dtype == np.float32
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    assert np.all(rgb[:, 2:8, 1] > 0.95) and np.all(rgb[:, 2:8, [0, 2]] < 0.05)


def test_grey_and_rgba_become_rgb(tmp_path):
    grey = np.full((16, 16), 128, np.uint8)
    rgb = load_rgb01(_save(tmp_path, grey, "g.png"), 8)
    assert rgb.shape == (8, 8, 3)
    np.testing.assert_allclose(rgb, 128 / 255, atol=1e-6)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgb = load_rgb01(_save(tmp_path, rgba, "c.png"), 8)
    assert rgb.shape == (8, 8, 3)
    np.testing.assert_allclose(rgb[..., 0], 200 / 255, atol=1e-6)
    np.testing.assert_allclose(rgb[..., 1:], 0, atol=1e-6)


def test_depth_uses_nearest_and_same_crop(tmp_path):
    depth = np.repeat(np.linspace(0.7, 3.0, 40)[None, :], 20, axis=0)  # varies along the width
    np.savez(tmp_path / "d.npz", arr_0=(6250 / depth).astype(np.float16))
    z = load_depth01(tmp_path / "d.npz", 10, NEAR, FAR)
    assert z.shape == (10, 10) and z.dtype == np.float32
    allowed = disparity_to_depth_code((6250 / depth).astype(np.float16), NEAR, FAR)[0]
    assert np.isin(z, allowed).all()  # NEAREST never blends values
    # centre crop keeps the middle half of the (resized) width: columns from ~10 to ~30 of 40
    assert allowed[8] < z.min() and z.max() < allowed[32]


def test_rgbd_stack_and_aspect_mismatch(tmp_path):
    img = _save(tmp_path, np.zeros((20, 40, 3), np.uint8), "a.png")
    np.savez(tmp_path / "ok.npz", arr_0=np.full((20, 40), 6250, np.float16))
    rgbd = load_rgbd01(img, tmp_path / "ok.npz", 8)
    assert rgbd.shape == (4, 8, 8) and rgbd.dtype == np.float32
    np.savez(tmp_path / "bad.npz", arr_0=np.full((40, 40), 6250, np.float16))
    with pytest.raises(DataFileError, match="bad.npz"):
        load_rgbd01(img, tmp_path / "bad.npz", 8)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", None])
def test_broken_depth_files_raise_with_path(tmp_path, content):
    path = tmp_path / "broken.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataFileError, match="broken.npz"):
        read_disparity(path)


def test_depth_without_arr_0_or_nonfinite(tmp_path):
    np.savez(tmp_path / "k.npz", depth=np.ones((4, 4), np.float16))
    with pytest.raises(DataFileError, match="arr_0"):
        read_disparity(tmp_path / "k.npz")
    np.savez(tmp_path / "n.npz", arr_0=np.array([[np.inf, 1.0]], np.float16))
    with pytest.raises(DataFileError, match="non-finite"):
        read_disparity(tmp_path / "n.npz")


def test_corrupt_image_raises_with_path(tmp_path):
    good = _save(tmp_path, np.zeros((32, 32, 3), np.uint8), "x.png")
    data = good.read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "j.JPEG").write_bytes(b"not an image at all")
    for name in ("t.png", "j.JPEG", "missing.png"):
        with pytest.raises(DataFileError, match=name.replace(".", r"\.")):
            load_rgb01(tmp_path / name, 8)


def test_normalize_flags():
    import torch

    x01 = torch.rand(2, 4, 3, 3)
    both = normalize_rgbd(x01, True, True)
    torch.testing.assert_close(both, x01 * 2 - 1)
    rgb_only = normalize_rgbd(x01, True, False)
    torch.testing.assert_close(rgb_only[:, 3], x01[:, 3])
    torch.testing.assert_close(unnormalize_rgbd(rgb_only, True, False), x01)
