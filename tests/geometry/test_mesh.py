"""depth_to_mesh against the reference meshes, plus analytic and NumPy/torch checks."""

import math
import pathlib

import numpy as np
import pytest
import torch

from ivid.geometry import Mesh, depth_to_mesh, look_at, perspective
from ivid.geometry.mesh import decode_flags

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "geometry"
SETTINGS = {
    "none": dict(),
    "frustum": dict(padding="frustum", fov=45, atol=0.03, rtol=0.03, erode_rgb=3, cal_normal=True),
    "pad32": dict(padding=32, fov=45, atol=0.03, rtol=0.03, erode_rgb=3, cal_normal=True),
    "none_tol": dict(padding=None, fov=45, atol=0.02, rtol=0.02),
    "frustum_fov60": dict(padding="frustum", fov=60, atol=0.03, rtol=0.03, erode_rgb=2, cal_normal=False),
}
ROOM_KWARGS = dict(padding="frustum", fov=45, atol=0.03, rtol=0.03, erode_rgb=3, cal_normal=True)


@pytest.fixture(scope="module")
def meshes():
    with np.load(FIXTURES / "meshes.npz", allow_pickle=False) as data:
        return dict(data)


@pytest.fixture(scope="module")
def room():
    with np.load(FIXTURES / "room_meshes.npz", allow_pickle=False) as data:
        return dict(data)


def _assert_faces_equal(faces, expected, skip_quads):
    """Face pairs equal quad by quad, except quads whose diagonal choice is a tie."""
    got, want = faces.reshape(-1, 2, 3), expected.reshape(-1, 2, 3)
    assert got.shape == want.shape
    keep = ~skip_quads.reshape(-1)
    np.testing.assert_array_equal(got[keep], want[keep])
    # tie quads still cover the quad's 4 corners
    for got_pair, want_pair in zip(got[~keep], want[~keep]):
        assert set(got_pair.ravel().tolist()) == set(want_pair.ravel().tolist())


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("scene", ["plane", "bump"])
def test_matches_reference_meshes(meshes, scene, setting):
    modelview = meshes.get(f"mv__{setting}")
    mesh = depth_to_mesh(meshes[f"{scene}__depth"], modelview=modelview, **SETTINGS[setting])
    prefix = f"{scene}__mesh_{setting}__"
    assert mesh.faces.dtype == np.int64 and mesh.vertices.flag.dtype == np.int64
    assert mesh.vertices.position.dtype == np.float64
    _assert_faces_equal(mesh.faces, meshes[prefix + "faces"], meshes[prefix + "tie_quads"])
    np.testing.assert_allclose(mesh.vertices.position, meshes[prefix + "position"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(mesh.vertices.uv, meshes[prefix + "uv"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(mesh.vertices.flag, meshes[prefix + "flag"])
    if prefix + "normal" in meshes:
        np.testing.assert_allclose(mesh.vertices.normal, meshes[prefix + "normal"], rtol=0, atol=1e-5)
    else:
        assert mesh.vertices.normal is None
    assert mesh.depth.shape == (64, 64, 1) and mesh.fov == SETTINGS[setting].get("fov", 45)


@pytest.mark.parametrize("view", [0, 1])
def test_room_flags_edges_and_erosion_match_reference(room, view):
    """A scene with real discontinuities: edge (1), padding (2) and eroded (4) bits."""
    mesh = depth_to_mesh(room["views_depth_linear"][view], modelview=room["views_modelview"][view], **ROOM_KWARGS)
    expected = room["views_mesh_flag"][view].astype(np.int64)
    assert set(np.unique(expected)) >= {0, 2, 4, 5}
    np.testing.assert_array_equal(mesh.vertices.flag[:, 0], expected)


def test_room_view0_geometry_matches_reference(room):
    mesh = depth_to_mesh(room["views_depth_linear"][0], modelview=room["views_modelview"][0], **ROOM_KWARGS)
    np.testing.assert_allclose(mesh.vertices.position, room["mesh0_position"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(mesh.vertices.normal, room["mesh0_normal"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(mesh.vertices.uv, room["mesh0_uv"], rtol=0, atol=1e-7)
    # quads whose diagonals are equal within float32 precision may legitimately differ
    grid = room["mesh0_position"].astype(np.float64).reshape(130, 130, 3)
    main = np.linalg.norm(grid[:-1, :-1] - grid[1:, 1:], axis=-1)
    anti = np.linalg.norm(grid[:-1, 1:] - grid[1:, :-1], axis=-1)
    near_tie = np.abs(main - anti) <= 1e-5 * np.maximum(main, anti)
    assert near_tie.mean() < 0.6  # the back wall is fronto-parallel: about half the quads tie
    _assert_faces_equal(mesh.faces, room["mesh0_faces"].astype(np.int64), near_tie)


def test_frontal_plane_is_flat_and_projects_to_pixel_centres():
    size, depth, fov = 16, 2.0, 45.0
    modelview = look_at((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    mesh = depth_to_mesh(np.full((size, size), depth, np.float32), fov=fov, modelview=modelview, cal_normal=True)
    np.testing.assert_allclose(mesh.vertices.normal, np.tile([0.0, 0.0, 1.0], (size * size, 1)), atol=1e-12)
    np.testing.assert_allclose(mesh.vertices.position[:, 2], 1.0 - depth, atol=1e-12)  # plane z = eye_z - depth
    np.testing.assert_allclose(mesh.camera_center, [0.0, 0.0, 1.0], atol=1e-12)
    clip = np.c_[mesh.vertices.position, np.ones(size * size)] @ (perspective(fov, 1, 0.1, 100) @ modelview).T
    ndc = clip[:, :2] / clip[:, 3:]
    rows, cols = np.divmod(np.arange(size * size), size)
    np.testing.assert_allclose(ndc[:, 0], (2 * cols + 1) / size - 1, atol=1e-12)
    np.testing.assert_allclose(ndc[:, 1], 1 - (2 * rows + 1) / size, atol=1e-12)
    # faces are counter-clockwise seen from the camera: positive signed area in NDC
    a, b, c = (ndc[mesh.faces[:, k]] for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    assert (area > 0).all()
    assert mesh.faces.shape == (2 * (size - 1) ** 2, 3)


def test_padding_ring_geometry():
    size, depth, fov = 8, 1.5, 45.0
    pixel = 2 * math.tan(math.radians(fov) / 2) / size * depth
    plain = depth_to_mesh(np.full((size, size), depth), fov=fov).vertices.position.reshape(size, size, 3)
    padded = depth_to_mesh(np.full((size, size), depth), padding=4, fov=fov)
    grid = padded.vertices.position.reshape(size + 2, size + 2, 3)
    np.testing.assert_allclose(grid[1:-1, 1:-1], plain)
    np.testing.assert_allclose(grid[1:-1, 0, 0], plain[:, 0, 0] - 4 * pixel)
    np.testing.assert_allclose(grid[1:-1, -1, 0], plain[:, -1, 0] + 4 * pixel)
    np.testing.assert_allclose(grid[0, 1:-1, 1], plain[0, :, 1] + 4 * pixel)  # row 0 = top = largest y
    np.testing.assert_allclose(grid[-1, 1:-1, 1], plain[-1, :, 1] - 4 * pixel)
    ring = np.ones((size + 2, size + 2), bool)
    ring[1:-1, 1:-1] = False
    np.testing.assert_array_equal(padded.vertices.flag.reshape(size + 2, size + 2), np.where(ring, 2, 0))
    frustum = depth_to_mesh(np.full((size, size), depth), padding="frustum", fov=fov)
    skirt = frustum.vertices.position.reshape(size + 2, size + 2, 3)
    np.testing.assert_allclose(skirt[ring][:, 2], -0.1)
    corner = np.array([plain[0, 0, 0] - pixel, plain[0, 0, 1] + pixel, -depth])
    np.testing.assert_allclose(skirt[0, 0], corner * 0.1 / depth)


def test_discontinuity_flags_hand_made_step():
    depth = np.full((10, 12), 3.0)
    depth[:, 6:] = 1.0
    mesh = depth_to_mesh(depth, atol=0.05, rtol=0.05, erode_rgb=1)
    flag = mesh.vertices.flag.reshape(10, 12)
    bits = decode_flags(mesh.vertices.flag).reshape(10, 12, 3)
    assert (bits[:, 5:7, 0] == 1).all() and bits[:, :5, 0].sum() == 0 and bits[:, 7:, 0].sum() == 0
    assert (bits[:, 4:8, 2] == 1).all() and bits[:, :4, 2].sum() == 0 and bits[:, 8:, 2].sum() == 0
    assert set(np.unique(flag)) == {0, 4, 5}
    only_atol = depth_to_mesh(depth, atol=10.0)  # spread 2 < 10: nothing flagged
    assert only_atol.vertices.flag.max() == 0


def test_torch_path_agrees_with_numpy(room):
    depth = room["views_depth_linear"][1]
    modelview = room["views_modelview"][1]
    expected = depth_to_mesh(depth, modelview=modelview, **ROOM_KWARGS)
    mesh = depth_to_mesh(torch.from_numpy(depth), modelview=torch.from_numpy(modelview), **ROOM_KWARGS)
    assert isinstance(mesh, Mesh) and isinstance(mesh.faces, torch.Tensor)
    assert mesh.vertices.position.dtype == torch.float32 and mesh.faces.dtype == torch.int64
    assert mesh.depth.shape == (128, 128, 1)
    np.testing.assert_array_equal(mesh.faces.numpy(), expected.faces)
    np.testing.assert_array_equal(mesh.vertices.flag.numpy(), expected.vertices.flag)
    np.testing.assert_allclose(mesh.vertices.position.numpy(), expected.vertices.position, atol=1e-6)
    np.testing.assert_allclose(mesh.vertices.normal.numpy(), expected.vertices.normal, atol=1e-6)
    back = mesh.numpy()
    assert isinstance(back.vertices.uv, np.ndarray) and back.fov == 45.0


@pytest.mark.gpu
def test_cuda_path_stays_on_device(room):
    depth = torch.from_numpy(room["views_depth_linear"][1]).cuda()
    mesh = depth_to_mesh(depth, modelview=room["views_modelview"][1], **ROOM_KWARGS)
    assert mesh.faces.is_cuda and mesh.vertices.position.is_cuda and mesh.modelview.is_cuda
    expected = depth_to_mesh(room["views_depth_linear"][1], modelview=room["views_modelview"][1], **ROOM_KWARGS)
    np.testing.assert_array_equal(mesh.vertices.flag.cpu().numpy(), expected.vertices.flag)
    np.testing.assert_allclose(mesh.vertices.position.cpu().numpy(), expected.vertices.position, atol=1e-6)


def test_argument_errors():
    with pytest.raises(ValueError, match="depth must be"):
        depth_to_mesh(np.ones((4, 4, 3)))
    with pytest.raises(ValueError, match="padding"):
        depth_to_mesh(np.ones((4, 4)), padding="skirt")
    with pytest.raises(ValueError, match="modelview"):
        depth_to_mesh(np.ones((4, 4)), modelview=np.eye(3))
