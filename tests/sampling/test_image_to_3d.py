"""ivid.sampling.image_to_3d: the photo's first view is preprocessed exactly like training data."""

import numpy as np
import pytest
from PIL import Image

from ivid.sampling.image_to_3d import disparity_to_code, first_view_tensor, photo_rgbd01


def _spec_z(arr_0, near=0.5, far=100.0):
    """docs/design.md#training-data, written out independently."""
    disp = arr_0.astype(np.float64) / 6250
    if disp.max() > 1 / near:
        disp = disp / (disp.max() * near)
    disp = np.maximum(disp, 1e-3)
    return np.clip((disp - 1 / near) / (1 / far - 1 / near), 0, 1)


def test_disparity_conversion_matches_spec_on_a_square_map():
    rng = np.random.default_rng(0)
    arr_0 = (rng.uniform(0, 20000, (16, 16))).astype(np.float16)
    np.testing.assert_allclose(disparity_to_code(arr_0, 16), _spec_z(arr_0), atol=1e-6)
    small = np.full((16, 16), 3000.0, np.float16)  # max disp 0.48 < 1/near: no normalisation
    np.testing.assert_allclose(disparity_to_code(small, 16), _spec_z(small), atol=1e-6)
    assert disparity_to_code(small, 16)[0, 0] == pytest.approx((0.48 - 2) / (0.01 - 2), abs=1e-6)


def test_photo_with_given_depth_is_cropped_like_training(tmp_path):
    h, w, s = 20, 40, 10
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, :, 0] = np.arange(w)[None, :] * 6          # red ramp along x
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    disp = np.tile(np.arange(w, dtype=np.float16)[None, :] * 100 + 1000, (h, 1))
    np.savez(tmp_path / "depth.npz", arr_0=disp)
    rgb01, z01 = photo_rgbd01(str(tmp_path / "photo.png"), s, str(tmp_path / "depth.npz"))
    assert rgb01.shape == (s, s, 3) and z01.shape == (s, s)
    # resize 20x40 -> 10x20 (NEAREST picks source columns 2k+1), centre crop columns 5..14
    expected = _spec_z(disp)[::2, 1::2][:, 5:15]
    np.testing.assert_allclose(z01, expected, atol=1e-6)
    assert rgb01[:, 0, 0].mean() < rgb01[:, -1, 0].mean()  # the crop keeps the ramp's middle, in order
    x = first_view_tensor(rgb01, z01, 3, "cpu")
    assert x.shape == (3, 4, s, s) and float(x.min()) >= -1 and float(x.max()) <= 1
    np.testing.assert_allclose(x[2, 3].numpy(), z01 * 2 - 1, atol=1e-6)


def test_bad_inputs_name_the_option(tmp_path):
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "photo.png")
    np.savez(tmp_path / "tall.npz", arr_0=np.ones((40, 20), np.float16))
    with pytest.raises(ValueError, match="--input_depth"):
        photo_rgbd01(str(tmp_path / "photo.png"), 8, str(tmp_path / "tall.npz"))
    with pytest.raises(ValueError, match="--input_image"):
        photo_rgbd01(str(tmp_path / "missing.png"), 8, str(tmp_path / "tall.npz"))


def test_photo_depth_from_midas_when_none_is_given(tmp_path):
    from ivid.depth import MidasDepth
    from ivid.depth.midas import TINY_ARGS

    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (24, 36, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    midas = MidasDepth.random(seed=0, **TINY_ARGS)
    rgb01, z01 = photo_rgbd01(str(tmp_path / "photo.png"), 12, midas=midas)
    disparity = midas.predict(photo).astype(np.float16)  # what the training data files store
    # resize 24x36 -> 12x18 (NEAREST: source rows/cols 2k+1), centre crop columns 3..14
    np.testing.assert_allclose(z01, _spec_z(disparity)[1::2, 1::2][:, 3:15], atol=1e-6)
    assert rgb01.shape == (12, 12, 3)


def test_missing_midas_checkpoint_names_the_option(tmp_path):
    from ivid.sampling.image_to_3d import load_midas

    with pytest.raises(FileNotFoundError, match="--midas_ckpt .*--input_depth"):
        load_midas(str(tmp_path / "dpt_beit_large_512.pt"), "cpu")
