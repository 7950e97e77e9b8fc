"""Cameras: reference viewsets/trajectories/projections and analytic projections."""

import json
import math
import pathlib

import numpy as np
import pytest
import torch

from ivid.geometry import (
    grid_order_3x9,
    look_at,
    orbit_eye,
    orbit_modelview,
    perspective,
    trajectory,
    viewset,
    viewset_from_file,
)
from ivid.geometry.camera import yaw_pitch_of_view
from ivid.geometry.viewsets import grid_yaw_pitch_3x9, trajectory_angles, viewset_angles

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "geometry"


@pytest.fixture(scope="module")
def cameras():
    with np.load(FIXTURES / "cameras.npz", allow_pickle=False) as data:
        return dict(data)


def test_viewset_3x9_matches_reference(cameras):
    views = viewset("3x9")
    assert len(views) == 27 and all(v.dtype == np.float64 and v.shape == (4, 4) for v in views)
    np.testing.assert_allclose(np.stack(views), cameras["views_3x9__modelview_f64"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.stack(views), cameras["views_3x9__modelview"], rtol=0, atol=1e-6)
    angles = np.array(viewset_angles("3x9"))
    np.testing.assert_array_equal(angles[:, 0], cameras["views_3x9__yaw"])
    np.testing.assert_array_equal(angles[:, 1], cameras["views_3x9__pitch"])
    np.testing.assert_allclose(orbit_eye(angles[:, 0], angles[:, 1]), cameras["views_3x9__eye_f32"], atol=1e-7)


def test_uncond_and_swing_match_reference(cameras):
    (first,) = viewset("uncond")
    np.testing.assert_array_equal(first, cameras["uncond__modelview"])
    swing = trajectory("swing", 60)
    np.testing.assert_allclose(np.stack(swing), cameras["swing_60__modelview_f64"], rtol=0, atol=1e-12)
    angles = np.array(trajectory_angles("swing", 60))
    np.testing.assert_allclose(angles[:, 0], cameras["swing_60__yaw"], atol=1e-15)
    np.testing.assert_allclose(angles[:, 1], cameras["swing_60__pitch"], atol=1e-15)


def test_grid_order_3x9_matches_reference(cameras):
    assert grid_order_3x9(27) == cameras["reorder_3x9__from27"].tolist()
    assert grid_order_3x9(26) == cameras["reorder_3x9__from26"].tolist()
    grid_yaw, grid_pitch = grid_yaw_pitch_3x9()
    np.testing.assert_array_equal(grid_yaw, cameras["reorder_3x9__grid_yaw"])
    np.testing.assert_array_equal(grid_pitch, cameras["reorder_3x9__grid_pitch"])
    with pytest.raises(ValueError, match="27 or 26"):
        grid_order_3x9(25)


@pytest.mark.parametrize("near", ["0.01", "0.1"])
def test_perspective_matches_glm(cameras, near):
    projection = perspective(45, 1, float(near), 200)
    assert projection.dtype == np.float64
    np.testing.assert_allclose(projection, cameras[f"projection_fov45_near{near}_far200"], rtol=1e-6, atol=1e-7)


def _project_to_pixel(point, modelview, fov, size):
    """Pixel (row, col) (continuous, centre of pixel (r, c) = (r, c)) and window depth of a world point."""
    clip = perspective(fov, 1.0, 0.1, 200.0) @ modelview @ np.append(point, 1.0)
    ndc = clip[:3] / clip[3]
    col = (ndc[0] + 1) / 2 * size - 0.5
    row = (1 - ndc[1]) / 2 * size - 0.5
    return row, col, (ndc[2] + 1) / 2


def test_point_on_optical_axis_projects_to_centre():
    modelview = look_at((0.3, -0.2, 2.0), (1.0, 0.5, -1.0), (0, 1, 0))
    eye, center = np.array([0.3, -0.2, 2.0]), np.array([1.0, 0.5, -1.0])
    point = eye + 1.7 * (center - eye) / np.linalg.norm(center - eye)
    row, col, _ = _project_to_pixel(point, modelview, 45, 64)
    assert row == pytest.approx(31.5, abs=1e-9) and col == pytest.approx(31.5, abs=1e-9)
    p_cam = modelview @ np.append(point, 1)
    np.testing.assert_allclose(p_cam[:3], [0, 0, -1.7], atol=1e-12)


def test_known_point_projects_to_formula_pixel():
    """Pixel (r, c) at linear depth d sits at d((u-0.5)/f, (0.5-v)/f, -1) in camera space."""
    size, fov, depth, r, c = 32, 45.0, 2.5, 5, 20
    focal = 0.5 / math.tan(math.radians(fov) / 2)
    u, v = (c + 0.5) / size, (r + 0.5) / size
    p_cam = depth * np.array([(u - 0.5) / focal, (0.5 - v) / focal, -1.0])
    modelview = orbit_modelview(0.4, -0.1)
    p_world = np.linalg.inv(modelview) @ np.append(p_cam, 1.0)
    row, col, w = _project_to_pixel(p_world[:3], modelview, fov, size)
    assert (row, col) == (pytest.approx(r, abs=1e-9), pytest.approx(c, abs=1e-9))
    assert 0.1 * 200 / (200 - w * (200 - 0.1)) == pytest.approx(depth, rel=1e-9)


def test_look_at_axes_and_yaw_sign():
    modelview = orbit_modelview(0.5, 0.2)
    rotation = modelview[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    eye = np.linalg.inv(modelview)[:3, 3]
    np.testing.assert_allclose(eye, [math.sin(0.5) * math.cos(0.2), math.sin(0.2), math.cos(0.5) * math.cos(0.2)])
    assert eye[0] > 0 and eye[1] > 0  # positive yaw -> camera to +x, positive pitch -> above
    yaw, pitch = yaw_pitch_of_view(modelview)
    assert float(yaw) == pytest.approx(0.5) and float(pitch) == pytest.approx(0.2)
    shifted = orbit_modelview(0.0, 0.0, radius=2.0, center=(1.0, 0.0, 0.0))
    np.testing.assert_allclose(np.linalg.inv(shifted)[:3, 3], [1.0, 0.0, 2.0], atol=1e-12)


def test_torch_and_numpy_agree():
    eye = np.array([[0.2, 0.1, 1.5], [-1.0, 0.3, 0.2]])
    expected = look_at(eye, (0, 0, 0), (0, 1, 0))
    got = look_at(torch.from_numpy(eye), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]))
    assert isinstance(got, torch.Tensor) and got.shape == (2, 4, 4) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    yaw = torch.tensor([0.1, -0.4])
    np.testing.assert_allclose(orbit_modelview(yaw, 0.15).numpy(), orbit_modelview(yaw.numpy(), 0.15), atol=1e-12)
    assert isinstance(perspective(torch.tensor(45.0), 1, 0.1, 200), torch.Tensor)


def test_random_viewset_and_trajectory_are_reproducible_and_bounded():
    first = viewset_angles("random", generator=np.random.default_rng(3))
    again = viewset_angles("random", generator=np.random.default_rng(3))
    assert first == again and len(first) == 2 and first[0] == (0.0, 0.0)
    draws = np.random.default_rng(3).standard_normal((1, 2))
    assert first[1] == pytest.approx((0.3 * draws[0, 0], 0.15 * draws[0, 1]))
    by_torch = viewset_angles("random", num=4, generator=torch.Generator().manual_seed(0))
    assert by_torch == viewset_angles("random", num=4, generator=torch.Generator().manual_seed(0))
    assert len(viewset("random", num=4, generator=np.random.default_rng(0))) == 4
    angles = np.array(trajectory_angles("random", 500, generator=np.random.default_rng(1)))
    assert np.abs(angles[:, 0]).max() <= 0.6 and np.abs(angles[:, 1]).max() <= 0.15
    assert (np.abs(angles[:, 0]) == 0.6).any()  # clipping happens at these sample sizes
    assert len(trajectory("random", 3, generator=torch.Generator().manual_seed(0))) == 3


@pytest.mark.parametrize("num", [20, 7, 1])
def test_360_viewset_covers_full_turn_outward(num):
    angles = viewset_angles("360", num=num)
    yaws = np.array([a for a, _ in angles])
    assert len(angles) == num and all(p == 0.0 for _, p in angles)
    step = 2 * math.pi / num
    # every yaw stop of the full turn exactly once
    np.testing.assert_allclose(np.sort(np.mod(yaws, 2 * math.pi)), step * np.arange(num), atol=1e-12)
    # every new view is one step away from an earlier one
    for k in range(1, num):
        gaps = np.abs(np.angle(np.exp(1j * (yaws[:k] - yaws[k]))))
        assert gaps.min() == pytest.approx(step)
    assert len(viewset("360")) == 20 and len(viewset("360x3", num=4)) == 12


def test_viewset_errors():
    with pytest.raises(ValueError, match="unknown viewset 'nope'"):
        viewset("nope")
    with pytest.raises(ValueError, match="at most 27"):
        viewset("3x9", num=28)
    with pytest.raises(ValueError, match="unknown trajectory"):
        trajectory("zigzag", 10)
    with pytest.raises(ValueError, match="frames"):
        trajectory("swing", 0)
    assert len(viewset("3x9", num=5)) == 5


def test_viewset_from_file(tmp_path):
    path = tmp_path / "views.json"
    matrix = orbit_modelview(0.2, 0.1)
    path.write_text(json.dumps([[0, 0], [0.3, -0.15], [0.1, 0.0, 1.5], matrix.tolist()]))
    views = viewset_from_file(path)
    assert len(views) == 4
    np.testing.assert_allclose(views[1], orbit_modelview(0.3, -0.15), atol=1e-15)
    np.testing.assert_allclose(views[3], matrix)
    path.write_text(json.dumps([[0, 0], [0.3, "x"]]))
    with pytest.raises(ValueError, match=r"views\.json: entry 1"):
        viewset_from_file(path)
    path.write_text(json.dumps([[0, 0], [1, 2, 3, 4]]))
    with pytest.raises(ValueError, match=r"views\.json: entry 1.*shape"):
        viewset_from_file(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        viewset_from_file(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="non-empty"):
        viewset_from_file(path)
