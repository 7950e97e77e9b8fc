"""Image loading: RGB conversion, centre crop + LANCZOS, fake size check, unreadable files, clean-fid resize."""

import numpy as np
import pytest
from PIL import Image

from ivid.metrics import MetricsError, load_fake_image, load_real_image
from ivid.metrics.preprocess import CleanResize


def _random_image(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8))


@pytest.mark.parametrize("w,h,box", [(48, 40, (4, 0, 44, 40)), (30, 50, (0, 10, 30, 40)), (33, 32, (0, 0, 32, 32))])
def test_real_image_is_centre_cropped_then_lanczos_resized(tmp_path, w, h, box):
    img = _random_image(w, h)
    img.save(tmp_path / "x.png")
    expected = np.asarray(img.crop(box).resize((24, 24), Image.LANCZOS))
    out = load_real_image(str(tmp_path / "x.png"), 24)
    assert out.dtype == np.uint8 and out.shape == (24, 24, 3)
    np.testing.assert_array_equal(out, expected)


def test_real_square_image_of_the_right_size_is_unchanged(tmp_path):
    img = _random_image(16, 16)
    img.save(tmp_path / "x.png")
    np.testing.assert_array_equal(load_real_image(str(tmp_path / "x.png"), 16), np.asarray(img))


@pytest.mark.parametrize("mode,ext", [("L", ".png"), ("RGBA", ".png"), ("P", ".png"), ("CMYK", ".jpg"),
                                      ("I;16", ".png")])
def test_other_colour_modes_become_rgb(tmp_path, mode, ext):
    path = tmp_path / f"x{ext}"
    _random_image(20, 20).convert(mode).save(path)
    expected = np.asarray(Image.open(path).convert("RGB"))
    out = load_real_image(str(path), 20)
    assert out.shape == (20, 20, 3)
    np.testing.assert_array_equal(out, expected)


def test_fake_image_of_wrong_size_names_the_file(tmp_path):
    _random_image(32, 30).save(tmp_path / "bad.png")
    with pytest.raises(MetricsError, match=r"bad\.png: fake image is 32x30 pixels, expected 32x32"):
        load_fake_image(str(tmp_path / "bad.png"), 32)


def test_fake_grey_image_becomes_rgb(tmp_path):
    _random_image(8, 8).convert("L").save(tmp_path / "g.png")
    out = load_fake_image(str(tmp_path / "g.png"), 8)
    assert out.shape == (8, 8, 3) and (out[..., 0] == out[..., 2]).all()


@pytest.mark.parametrize("content", [b"", b"not a png at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00"])
def test_unreadable_file_names_the_file(tmp_path, content):
    (tmp_path / "broken.png").write_bytes(content)
    for load in (load_real_image, load_fake_image):
        with pytest.raises(MetricsError, match=r"broken\.png: cannot read image"):
            load(str(tmp_path / "broken.png"), 8)


def test_clean_resize_matches_clean_fid():
    from cleanfid.resize import build_resizer

    image = np.asarray(_random_image(37, 23))
    ours, theirs = CleanResize()(image), build_resizer("clean")(image)
    assert ours.dtype == np.float32 and ours.shape == (299, 299, 3)
    np.testing.assert_array_equal(ours, theirs)
