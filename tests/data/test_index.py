"""dataset.json: built on first use (sorted labels, relative paths, atomic), reused, clear layout errors."""

import json
import os

import numpy as np
import pytest

from ivid.data import DataLayoutError, ImageNet, SingleCategory
from ivid.data.index import depth_path_for, load_or_build_index


def _touch_image(path):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def _touch_depth(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, arr_0=np.full((8, 8), 6250, np.float16))


def _imagenet_folder(root, wnids=("n02", "n01", "n10"), per_class=2):
    for wnid in wnids:
        for j in range(per_class):
            _touch_image(root / "images" / wnid / f"{wnid}_{j}.JPEG")
            _touch_depth(root / "depths" / wnid / f"{wnid}_{j}.npz")
    return root


def test_build_writes_sorted_labels_and_relative_paths(tmp_path):
    root = _imagenet_folder(tmp_path / "d")
    index = load_or_build_index(root, "imagenet")
    assert index.labels == {"n01": 0, "n02": 1, "n10": 2}
    assert index.images[0] == "images/n01/n01_0.JPEG"
    assert index.depths[0] == "depths/n01/n01_0.npz"
    assert index.class_of(len(index.images) - 1) == 2
    on_disk = json.loads((root / "dataset.json").read_text())
    assert set(on_disk) == {"labels", "images", "depths"}
    assert list(on_disk["labels"]) == ["n01", "n02", "n10"]
    assert on_disk["images"] == index.images and on_disk["depths"] == index.depths
    assert not [p for p in os.listdir(root) if p.endswith(".tmp")]  # atomic write left no temp file


def test_existing_index_is_reused(tmp_path):
    root = _imagenet_folder(tmp_path / "d")
    load_or_build_index(root, "imagenet")
    data = json.loads((root / "dataset.json").read_text())
    data["images"], data["depths"] = data["images"][:2], data["depths"][:2]
    (root / "dataset.json").write_text(json.dumps(data))
    _touch_image(root / "images" / "n01" / "extra.JPEG")
    assert len(ImageNet(str(root), image_size=8)) == 2  # the stored index, not a new listing


def test_single_layout(tmp_path):
    root = tmp_path / "s"
    for name in ("b.png", "a.jpg"):
        _touch_image(root / "images" / name)
        _touch_depth(root / "depths" / (os.path.splitext(name)[0] + ".npz"))
    index = load_or_build_index(root, "single")
    assert index.labels == {} and index.images == ["images/a.jpg", "images/b.png"]
    assert index.depths == ["depths/a.npz", "depths/b.npz"]


def test_depth_path_for():
    assert depth_path_for("images/n01/x.y.JPEG") == "depths/n01/x.y.npz"
    assert depth_path_for("images/a.png") == "depths/a.npz"


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataLayoutError, match="does not exist"):
        ImageNet(str(tmp_path / "nowhere"), image_size=8)
    (tmp_path / "e").mkdir()
    with pytest.raises(DataLayoutError, match=r"no 'images/' folder.*expected images/<wnid>"):
        ImageNet(str(tmp_path / "e"), image_size=8)
    (tmp_path / "e" / "images").mkdir()
    with pytest.raises(DataLayoutError, match="no 'depths/' folder"):
        SingleCategory(str(tmp_path / "e"), image_size=8)
    (tmp_path / "e" / "depths").mkdir()
    with pytest.raises(DataLayoutError, match=str(tmp_path / "e")):
        SingleCategory(str(tmp_path / "e"), image_size=8)


def test_wrong_layouts_name_the_other_dataset(tmp_path):
    flat = tmp_path / "flat"
    _touch_image(flat / "images" / "a.png")
    _touch_depth(flat / "depths" / "a.npz")
    with pytest.raises(DataLayoutError, match="SingleCategory"):
        ImageNet(str(flat), image_size=8)
    nested = _imagenet_folder(tmp_path / "nested")
    with pytest.raises(DataLayoutError, match="ImageNet"):
        SingleCategory(str(nested), image_size=8)


def test_no_depth_at_all_is_an_error(tmp_path):
    root = tmp_path / "d"
    _touch_image(root / "images" / "n01" / "a.JPEG")
    (root / "depths").mkdir()
    with pytest.raises(DataLayoutError, match="none of the 1 images has a depth file"):
        ImageNet(str(root), image_size=8)


def test_some_depths_missing_warns(tmp_path):
    root = _imagenet_folder(tmp_path / "d")
    os.remove(root / "depths" / "n01" / "n01_0.npz")
    with pytest.warns(UserWarning, match="1 of 6 images have no depth file"):
        load_or_build_index(root, "imagenet")


def test_bad_index_file_is_a_clear_error(tmp_path):
    root = _imagenet_folder(tmp_path / "d")
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(DataLayoutError, match="dataset.json.*delete it"):
        ImageNet(str(root), image_size=8)
    (root / "dataset.json").write_text(json.dumps({"labels": {}, "images": ["images/a.png"],
                                                   "depths": ["depths/a.npz"]}))
    with pytest.raises(DataLayoutError, match="'labels' is empty"):
        ImageNet(str(root), image_size=8)
