"""Toy dataset generator (ivid.toy.generator): layouts, MiDaS-like npz format, depth round trip, determinism."""

import json

import numpy as np
import pytest

from ivid.data.preprocess import disparity_to_depth_code, read_disparity
from ivid.toy import generate_dataset, image_scene, relative_paths, wnid
from ivid.toy.raycast import render_scene
from repo_scripts import load_script


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    generate_dataset(str(root), 7, 24, "imagenet", num_classes=3, seed=5, ssaa=1, verbose=False)
    return root


def test_imagenet_layout_and_npz_format(toy_dir):
    assert sorted(p.name for p in (toy_dir / "images").iterdir()) == ["n00000000", "n00000001", "n00000002"]
    assert wnid(12) == "n00000012"
    assert (toy_dir / "images" / "n00000001" / "n00000001_000004.png").is_file()
    npz = np.load(toy_dir / "depths" / "n00000001" / "n00000001_000004.npz", allow_pickle=False)
    assert npz.files == ["arr_0"]
    assert npz["arr_0"].dtype == np.float16 and npz["arr_0"].shape == (24, 24)
    index = json.loads((toy_dir / "dataset.json").read_text())
    assert index["labels"] == {"n00000000": 0, "n00000001": 1, "n00000002": 2}
    assert len(index["images"]) == 7
    info = json.loads((toy_dir / "toy_info.json").read_text())
    assert info["num_images"] == 7 and len(info["classes"]) == 3


def test_depth_round_trip_through_spec_preprocessing(toy_dir):
    for i in (0, 4, 6):
        scene, _ = image_scene(5, i, "imagenet", 3)
        _, depth = render_scene(scene, 24, ssaa=1)
        assert 0.5 < depth.min() and depth.max() < 5.0
        disp = read_disparity(toy_dir / relative_paths(i, "imagenet", 3)[1])
        np.testing.assert_allclose(disp / 6250.0, 1.0 / depth, rtol=1e-3)  # float16 storage
        z = disparity_to_depth_code(disp, 0.5, 100.0, "z_buffer")
        z_exact = (1 / 0.5 - 1 / depth) / (1 / 0.5 - 1 / 100.0)
        np.testing.assert_allclose(z, z_exact, atol=1e-3)


def test_single_layout(tmp_path):
    generate_dataset(str(tmp_path), 3, 16, "single", seed=0, ssaa=1, verbose=False)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert (tmp_path / "depths" / "000002.npz").is_file()
    assert json.loads((tmp_path / "dataset.json").read_text())["labels"] == {}


def test_deterministic_and_independent_of_workers(tmp_path, toy_dir):
    generate_dataset(str(tmp_path), 7, 24, "imagenet", num_classes=3, seed=5, ssaa=1, num_workers=2,
                     verbose=False)
    for i in range(7):
        for rel in relative_paths(i, "imagenet", 3):
            if rel.endswith(".png"):
                assert (tmp_path / rel).read_bytes() == (toy_dir / rel).read_bytes()
            else:
                np.testing.assert_array_equal(np.load(tmp_path / rel)["arr_0"], np.load(toy_dir / rel)["arr_0"])
    other, _ = image_scene(6, 0, "imagenet", 3)
    assert not np.array_equal(render_scene(other, 24, 1)[1],
                              render_scene(image_scene(5, 0, "imagenet", 3)[0], 24, 1)[1])


def test_cli(tmp_path, repo_root):
    cli = load_script(repo_root / "scripts" / "make_toy_dataset.py", "make_toy_dataset")
    cli.main(cli.parse_args(["--output_dir", str(tmp_path / "t"), "--num_images", "2", "--image_size", "16",
                     "--layout", "single", "--num_workers", "1", "--ssaa", "1"]))
    assert (tmp_path / "t" / "images" / "000001.png").is_file()
