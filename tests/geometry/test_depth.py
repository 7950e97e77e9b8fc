"""Depth encodings, depth_edge and erode_mask against reference fixtures and hand-made cases."""

import pathlib

import numpy as np
import pytest
import torch

from ivid.geometry import depth_edge, erode_mask, linearize_depth, project_depth

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "geometry"
PLANES = [(0.5, 100), (0.6, 5)]
MODES = ["z_buffer", "linear"]


@pytest.fixture(scope="module")
def meshes():
    with np.load(FIXTURES / "meshes.npz", allow_pickle=False) as data:
        return dict(data)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("near,far", PLANES)
def test_conversions_match_reference(meshes, near, far, mode):
    tag = f"{mode}_n{near}_f{far}"
    z, d = meshes["conv__z_test"], meshes["conv__d_test"]
    linear = linearize_depth(z, near, far, mode)
    projected = project_depth(d, near, far, mode)
    assert isinstance(linear, np.ndarray) and linear.dtype == np.float64
    np.testing.assert_allclose(linear, meshes[f"conv__linearize_{tag}"], rtol=1e-14, atol=0)
    np.testing.assert_allclose(projected, meshes[f"conv__project_{tag}"], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(project_depth(linear, near, far, mode), meshes[f"conv__project_of_linearize_{tag}"],
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(linearize_depth(projected, near, far, mode),
                               meshes[f"conv__linearize_of_project_{tag}"], rtol=1e-12, atol=0)


@pytest.mark.parametrize("scene", ["plane", "bump"])
def test_float32_scene_depth_is_bit_exact(meshes, scene):
    depth = linearize_depth(meshes[f"{scene}__zbuf"], 0.6, 5)
    assert depth.dtype == np.float32 and depth.shape == (64, 64, 1)
    np.testing.assert_array_equal(depth, meshes[f"{scene}__depth"])
    z = project_depth(meshes[f"{scene}__depth"], 0.6, 5)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, meshes[f"{scene}__zbuf_roundtrip"])


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_inside_planes(mode):
    depth = np.linspace(0.6, 5.0, 101)
    inner = slice(1, -1)  # z_buffer clips z to [1e-6, 1 - 1e-6] before linearising
    np.testing.assert_allclose(linearize_depth(project_depth(depth, 0.6, 5, mode), 0.6, 5, mode)[inner],
                               depth[inner], rtol=1e-12)
    z = project_depth(depth, 0.6, 5, mode)
    assert z[0] == pytest.approx(0.0, abs=1e-12) and z[-1] == pytest.approx(1.0)
    assert np.all(np.diff(z) > 0)


def test_torch_keeps_device_and_dtype():
    z = torch.tensor([[0.1, 0.5], [0.9, 1.0]], dtype=torch.float32)
    depth = linearize_depth(z, 0.6, 5)
    assert isinstance(depth, torch.Tensor) and depth.dtype == torch.float32
    np.testing.assert_array_equal(depth.numpy(), linearize_depth(z.numpy(), 0.6, 5))
    assert linearize_depth(np.array([0, 1]), 0.6, 5).dtype == np.float64
    with pytest.raises(ValueError, match="unknown depth mode"):
        project_depth(z, 0.6, 5, mode="log")


@pytest.mark.parametrize("scene", ["plane", "bump"])
@pytest.mark.parametrize("tol", ["0.02", "0.03"])
@pytest.mark.parametrize("kind", ["linear", "zbuf"])
def test_depth_edge_matches_reference(meshes, scene, tol, kind):
    values = meshes[f"{scene}__depth"] if kind == "linear" else meshes[f"{scene}__zbuf"]
    keep = depth_edge(values, float(tol), float(tol))
    assert keep.dtype == np.bool_ and keep.shape == (64, 64, 1)
    np.testing.assert_array_equal(keep, meshes[f"{scene}__depth_edge_{kind}_{tol}"])


def _naive_depth_edge(z, atol, rtol):
    """Per-pixel loop reference of the rule in docs/design.md#depth-to-mesh."""
    z = np.maximum(z, 1e-6)
    height, width = z.shape
    count = np.zeros((height, width), int)
    for r in range(height):
        for c in range(width):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < height and 0 <= cc < width:
                    a, b = z[r, c], z[rr, cc]
                    if abs(a - b) > atol and abs(1 / a - 1 / b) > rtol:
                        count[r, c] += 1
                        count[rr, cc] += 1
    return count < 3


def test_depth_edge_step_and_batch():
    z = np.full((8, 10), 0.3)
    z[2:6, 3:7] = 0.8  # a square in front of a far background
    z[0, 0] = 0.0  # floored at 1e-6
    keep = depth_edge(z, 0.03, 0.03)
    np.testing.assert_array_equal(keep[..., 0], _naive_depth_edge(z, 0.03, 0.03))
    assert not keep[2, 3, 0] and keep[4, 5, 0] and keep[7, 9, 0]
    batch = torch.from_numpy(np.stack([z, z[::-1].copy()]))
    out = depth_edge(batch.unsqueeze(-1), 0.03, 0.03)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 8, 10, 1)
    np.testing.assert_array_equal(out[0].numpy(), keep)
    np.testing.assert_array_equal(out[1, ..., 0].numpy(), _naive_depth_edge(z[::-1], 0.03, 0.03))
    np.testing.assert_array_equal(depth_edge(z[..., None], 0.03, 0.03), keep)


def test_erode_mask_hand_made():
    mask = np.ones((7, 8), dtype=bool)
    mask[3, 4] = False
    eroded = erode_mask(mask, 3)
    expected = np.ones((7, 8), dtype=bool)
    expected[2:5, 3:6] = False
    np.testing.assert_array_equal(eroded, expected)
    # the image border never erodes
    border = np.ones((5, 5), dtype=np.uint8)
    border[0, 0] = 0
    out = erode_mask(border, 5)
    assert out.dtype == np.uint8 and out.sum() == 25 - 9
    assert out[:3, :3].max() == 0 and out[3:, :].min() == 1 and out[:, 3:].min() == 1
    # even size: window covers offsets -size//2 .. size//2 - 1 (OpenCV anchor)
    single = np.ones((6, 6), dtype=np.float32)
    single[2, 2] = 0
    out = erode_mask(single[..., None], 2)
    assert out.shape == (6, 6, 1) and out.dtype == np.float32
    assert sorted(zip(*np.nonzero(out[..., 0] == 0))) == [(2, 2), (2, 3), (3, 2), (3, 3)]
    np.testing.assert_array_equal(erode_mask(mask, 1), mask)


def test_erode_mask_torch_batch():
    mask = torch.ones(2, 9, 9, 1, dtype=torch.bool)
    mask[1, 4, 4] = False
    out = erode_mask(mask, 5)
    assert out.dtype == torch.bool and out.shape == mask.shape
    assert out[0].all() and int((~out[1]).sum()) == 25
    with pytest.raises(ValueError, match="size"):
        erode_mask(mask, 0)
