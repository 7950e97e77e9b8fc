"""Which files are read: recursive listing, extension cases, seeded sub-sampling, fingerprints."""

import os

import pytest

from ivid.metrics import MetricsError, list_images, select_samples
from ivid.metrics.files import fingerprint

from .conftest import write_images


def test_list_images_is_recursive_case_insensitive_and_sorted(tmp_path):
    write_images(tmp_path / "b", 2, 8, ext=".PNG")
    write_images(tmp_path / "a" / "deep", 2, 8, ext=".jpeg")
    write_images(tmp_path, 1, 8, ext=".Jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "img.gif").write_bytes(b"GIF89a")
    rel = [os.path.relpath(p, tmp_path).replace(os.sep, "/") for p in list_images(str(tmp_path))]
    assert rel == ["a/deep/img000.jpeg", "a/deep/img001.jpeg", "b/img000.PNG", "b/img001.PNG", "img000.Jpg"]


def test_empty_and_missing_folders_are_errors(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(MetricsError, match="no images .* found under real image folder .*empty"):
        list_images(str(tmp_path / "empty"), "real")
    with pytest.raises(MetricsError, match="does not exist"):
        list_images(str(tmp_path / "nowhere"), "fake")


def test_select_samples_is_seeded_sorted_and_bounded():
    files = [f"f{i:02d}" for i in range(20)]
    a, b = select_samples(files, 7, seed=3), select_samples(files, 7, seed=3)
    assert a == b and len(set(a)) == 7 and a == sorted(a)
    assert select_samples(files, 7, seed=4) != a
    assert select_samples(files, None, seed=0) == files
    with pytest.raises(MetricsError, match="num_samples=21"):
        select_samples(files, 21, seed=0)


def test_fingerprint_depends_on_relative_paths_only(tmp_path):
    one = [str(tmp_path / "x" / "a.png"), str(tmp_path / "x" / "b.png")]
    two = [str(tmp_path / "y" / "a.png"), str(tmp_path / "y" / "b.png")]
    assert fingerprint(one, str(tmp_path / "x")) == fingerprint(two, str(tmp_path / "y"))
    assert fingerprint(one[:1], str(tmp_path / "x")) != fingerprint(one, str(tmp_path / "x"))
