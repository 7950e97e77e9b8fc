"""Small toy data folders shared by the data tests (generated once per session)."""

from __future__ import annotations

import shutil

import pytest

from ivid.toy import generate_dataset

TOY_SIZE = 32
#: the dataset arguments of the released configs (the constructors' defaults are the reference's:
#: normalize False, normalize_depth False, preprocess_depth 'none')
RELEASED = {"normalize": True, "normalize_depth": True, "preprocess_depth": "z_buffer"}


def warp_renderer_available() -> bool:
    try:
        from ivid.geometry import forward_backward_warp  # noqa: F401
    except ImportError:
        return False
    return True


needs_renderer = pytest.mark.skipif(not warp_renderer_available(),
                                    reason="ivid.geometry.forward_backward_warp not available yet")


@pytest.fixture(scope="session")
def toy_imagenet(tmp_path_factory):
    """9 images of 3 classes, 32 x 32, imagenet layout (dataset.json removed: built on first use)."""
    root = tmp_path_factory.mktemp("toy_imagenet")
    generate_dataset(str(root), 9, TOY_SIZE, "imagenet", num_classes=3, seed=1, ssaa=1, verbose=False)
    (root / "dataset.json").unlink()
    return root


@pytest.fixture(scope="session")
def toy_single(tmp_path_factory):
    """4 images, 32 x 32, single-category layout."""
    root = tmp_path_factory.mktemp("toy_single")
    generate_dataset(str(root), 4, TOY_SIZE, "single", seed=2, ssaa=1, verbose=False)
    (root / "dataset.json").unlink()
    return root


@pytest.fixture(scope="session")
def toy_single64(tmp_path_factory):
    """1 image, 64 x 64, single-category layout (the warp's discontinuity thresholds suit >= 64 px)."""
    root = tmp_path_factory.mktemp("toy_single64")
    generate_dataset(str(root), 1, 64, "single", seed=3, ssaa=1, verbose=False)
    return root


@pytest.fixture
def toy_copy(tmp_path, toy_imagenet):
    """A private copy of the imagenet toy folder that a test may damage."""
    dst = tmp_path / "data"
    shutil.copytree(toy_imagenet, dst)
    return dst
