"""Toy dataset: analytic ray casting, layouts, MiDaS-like npz format, depth round trip, determinism."""

import importlib.util
import json
import math

import numpy as np
import pytest

from ivid.data.preprocess import disparity_to_depth_code, read_disparity
from ivid.data.toy import generate_dataset, image_scene, relative_paths, wnid
from ivid.data.toy_render import Box, Ellipsoid, Material, Plane, Scene, render_scene

GREY = Material((0.5, 0.5, 0.5))


def _backdrop(depth):
    return Plane((0.0, 0.0, 1.0 - depth), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), GREY)


def test_backdrop_depth_is_exact():
    _, depth = render_scene(Scene([], [_backdrop(2.5)]), 16, ssaa=1)
    np.testing.assert_allclose(depth, 2.5, rtol=1e-6)


def test_sphere_depth_and_silhouette_are_analytic():
    size, radius = 64, 0.2
    scene = Scene([Ellipsoid((0.0, 0.0, 0.0), GREY, 0.0, (radius,) * 3)], [_backdrop(3.0)])
    _, depth = render_scene(scene, size, ssaa=1)
    focal = 0.5 / math.tan(math.radians(22.5))
    coords = ((np.arange(size) + 0.5) / size - 0.5) / focal
    x, y = np.meshgrid(coords, -coords)
    # ray (x, y, -1) from (0, 0, 1) meets |p| = r at t = (1 - sqrt(1 - (1 + x^2 + y^2)(1 - r^2))) / (1 + x^2 + y^2)
    q = 1 + x * x + y * y
    disc = 1 - q * (1 - radius ** 2)
    hit = disc >= 0
    expected = np.where(hit, (1 - np.sqrt(np.maximum(disc, 0))) / q, 3.0)
    np.testing.assert_allclose(depth, expected, rtol=1e-4)
    assert hit.sum() > 100


def test_box_depth_face_on():
    scene = Scene([Box((0.0, 0.0, 0.0), GREY, 0.0, (0.1, 0.1, 0.1))], [_backdrop(3.0)])
    _, depth = render_scene(scene, 32, ssaa=1)
    assert depth[16, 16] == pytest.approx(0.9, rel=1e-6)  # front face z = 0.1 -> depth 0.9


def test_pitched_camera_depth_of_the_origin():
    scene = Scene([Ellipsoid((0.0, 0.0, 0.0), GREY, 0.0, (0.1,) * 3)], [_backdrop(3.0)], camera_pitch=0.3)
    _, depth = render_scene(scene, 32, ssaa=1)
    # the ray through the image centre (between the 4 middle pixels) reaches the sphere at distance 0.9
    assert np.all(np.abs(depth[15:17, 15:17] - 0.9) < 0.01)


def test_ssaa_keeps_exact_centre_depth():
    scene, _ = image_scene(0, 3, "imagenet", 10)
    _, d1 = render_scene(scene, 24, ssaa=1)
    rgb3, d3 = render_scene(scene, 24, ssaa=3)
    np.testing.assert_array_equal(d1, d3)
    assert rgb3.dtype == np.uint8 and rgb3.shape == (24, 24, 3)


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
    spec = importlib.util.spec_from_file_location("make_toy_dataset", repo_root / "scripts" / "make_toy_dataset.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(cli.parse_args(["--output_dir", str(tmp_path / "t"), "--num_images", "2", "--image_size", "16",
                     "--layout", "single", "--num_workers", "1", "--ssaa", "1"]))
    assert (tmp_path / "t" / "images" / "000001.png").is_file()
