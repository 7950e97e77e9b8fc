"""The rasteriser (rasterize_keys + resolve_rows) against a naive per-pixel reference loop and analytic cases."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from ivid.geometry.renderer import BackDiscard, rasterize_keys, resolve_rows, settings_for, to_clip
from ivid.geometry.renderer.setup import DEPTH_MAX

SIZE = 24


@dataclass
class Frames:
    """Whole framebuffers decoded from the production path, (F, H, W) maps."""

    pix_to_face: torch.Tensor  # int64 index into the given faces, -1 where empty
    bary: torch.Tensor  # (F, H, W, 3) float32
    zbuf: torch.Tensor  # float32 window depth, 1.0 where empty
    front_facing: torch.Tensor  # bool

    @property
    def covered(self):
        return self.pix_to_face >= 0


def rasterize(clip, faces, face_frame, num_frames, size, back_discard=None, settings=None):
    """rasterize_keys, then resolve_rows over all rows (the renderers resolve the same rows block by block)."""
    raster = rasterize_keys(clip, faces, face_frame, num_frames, size, back_discard, settings)
    rows = resolve_rows(raster, 0, raster.keys.shape[0], settings)
    face = rows.face if raster.kept is None else raster.kept.index_select(0, rows.face.view(-1)).view(rows.face.shape)
    shape = (num_frames, size, size)
    return Frames(pix_to_face=torch.where(rows.covered, face, -1).view(shape), bary=rows.bary.view(shape + (3,)),
                  zbuf=rows.zbuf.view(shape), front_facing=rows.front.view(shape))


def _perspective(fov=45.0, near=0.1, far=200.0):
    f = 1 / math.tan(math.radians(fov) / 2)
    return np.array([[f, 0, 0, 0], [0, f, 0, 0], [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
                     [0, 0, -1, 0]])


def naive_rasterize(clip, faces, size):
    """Per-pixel reference: 2D-homogeneous coverage, llvmpipe fixed point + fill rule, 24-bit z-test 'less'."""
    face_map, depth_map = np.full((size, size), -1), np.full((size, size), DEPTH_MAX)
    bary_map = np.zeros((size, size, 3))
    for f, tri in enumerate(faces):
        v = clip[tri]
        m = v[:, [0, 1, 3]].T  # columns = vertices (x, y, w)
        if abs(np.linalg.det(m)) < 1e-300:
            continue
        exact = bool(np.all(v[:, 3] > 0) and np.all(v[:, 2] + v[:, 3] >= 0))
        if exact:  # snapped window coordinates, row 0 = top, pixel centres at integers * 256
            fx = [round(((x / w + 1) * size / 2 - 0.5) * 256) for x, w in zip(v[:, 0], v[:, 3])]
            fy = [round(((1 - y / w) * size / 2 - 0.5) * 256) for y, w in zip(v[:, 1], v[:, 3])]
            area = (fx[1] - fx[0]) * (fy[2] - fy[0]) - (fy[1] - fy[0]) * (fx[2] - fx[0])
            if area == 0:
                continue
        for r in range(size):
            for c in range(size):
                k = np.linalg.solve(m, [(2 * c + 1) / size - 1, 1 - (2 * r + 1) / size, 1.0])
                if exact:
                    inside = True
                    for a, b in ((0, 1), (1, 2), (2, 0)):
                        sign = 1 if area > 0 else -1
                        e = sign * ((fx[b] - fx[a]) * (256 * r - fy[a]) - (fy[b] - fy[a]) * (256 * c - fx[a]))
                        grad_x, grad_y = -sign * (fy[b] - fy[a]), sign * (fx[b] - fx[a])
                        on_edge_ok = grad_x > 0 or (grad_x == 0 and grad_y < 0)  # left or image-bottom edge
                        inside &= e > 0 or (e == 0 and on_edge_ok)
                else:
                    inside = bool(np.all(k >= 0))
                z_ndc = k @ v[:, 2]
                if not inside or z_ndc < -1 or z_ndc > 1:
                    continue
                depth = int(np.round((z_ndc * 0.5 + 0.5) * DEPTH_MAX))
                if depth < depth_map[r, c]:
                    face_map[r, c], depth_map[r, c], bary_map[r, c] = f, depth, k / k.sum()
    return face_map, depth_map, bary_map


def _run(clip, faces, size=SIZE, **kwargs):
    clip_t, faces_t = torch.from_numpy(clip), torch.from_numpy(np.asarray(faces, dtype=np.int64))
    frames = torch.zeros(len(faces), dtype=torch.int64)
    return rasterize(clip_t, faces_t, frames, 1, size, **kwargs)


def _compare(clip, faces, size=SIZE):
    frag = _run(clip, faces, size)
    face_ref, depth_ref, bary_ref = naive_rasterize(clip, faces, size)
    np.testing.assert_array_equal(frag.pix_to_face[0].numpy(), face_ref)
    covered = face_ref >= 0
    np.testing.assert_array_equal(np.round(frag.zbuf[0].numpy().astype(np.float64) * DEPTH_MAX)[covered],
                                  depth_ref[covered])
    np.testing.assert_allclose(frag.bary[0].numpy()[covered], bary_ref[covered], atol=1e-5)
    return frag, face_ref


def _world_clip(points):
    return to_clip(torch.tensor(points, dtype=torch.float64), torch.from_numpy(_perspective())).numpy()


def test_random_small_and_large_triangles_match_naive_loop():
    rng = np.random.default_rng(1)
    points, faces = [], []
    for k in range(14):  # small, medium and image-filling triangles at various depths, both orientations
        scale = [0.05, 0.2, 1.0][k % 3]
        center = np.append(rng.uniform(-0.3, 0.3, 2), -rng.uniform(1.0, 2.0))
        corner = center + np.concatenate([rng.uniform(-scale, scale, (3, 2)), rng.uniform(-0.2, 0.2, (3, 1))], 1)
        faces.append([len(points), len(points) + 1, len(points) + 2])
        points.extend(corner.tolist())
    frag, face_ref = _compare(_world_clip(points), faces)
    assert (face_ref >= 0).mean() > 0.3 and len(np.unique(face_ref)) > 5
    assert frag.front_facing[0].any() and (~frag.front_facing[0] & frag.covered[0]).any()


def test_small_triangle_grid_across_the_border_matches_naive_loop():
    """Many pixel-sized triangles (dense path), some leaving the image (span path), some degenerate."""
    rng = np.random.default_rng(7)
    n = 9
    u, v = np.meshgrid(np.linspace(-1.25, 1.1, n), np.linspace(-1.15, 1.3, n))
    points = np.stack([u * 0.45, v * 0.45, -1.2 - 0.3 * rng.random((n, n))], -1).reshape(-1, 3)
    points[5] = points[4]  # a zero-area face
    index = np.arange(n * n).reshape(n, n)
    quads = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], -1).reshape(-1, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    faces[::3] = faces[::3, ::-1]  # some back faces
    frag, face_ref = _compare(_world_clip(points), faces.tolist())
    assert (face_ref >= 0).mean() > 0.5 and len(np.unique(face_ref)) > 40


def test_resolve_in_sub_blocks_is_exact():
    rng = np.random.default_rng(4)
    world = np.append(rng.uniform(-0.8, 0.8, (40, 2)), -rng.uniform(1, 3, (40, 1)), 1)
    clip, faces = torch.from_numpy(_world_clip(world)), torch.from_numpy(rng.integers(0, 40, (60, 3)))
    frames = torch.zeros(60, dtype=torch.int64)
    whole = rasterize(clip, faces, frames, 1, SIZE, settings=settings_for("cpu").replace(resolve_block_pixels=None))
    small = settings_for("cpu").replace(resolve_block_pixels=(2 * SIZE + 5) // torch.get_num_threads())
    parts = rasterize(clip, faces, frames, 1, SIZE, settings=small)  # sub-blocks of about 2 rows
    assert torch.equal(whole.bary, parts.bary) and torch.equal(whole.pix_to_face, parts.pix_to_face)


def test_back_facing_large_triangle_and_facing_flag():
    points = [[-1, -1, -2.0], [1, -1, -2.0], [0, 1, -2.0], [-1, -1, -1.5], [0, 1, -1.5], [1, -1, -1.5]]
    frag, face_ref = _compare(_world_clip(points), [[0, 1, 2], [3, 4, 5]])  # CCW (front), then CW (back, nearer)
    assert (face_ref == 1).sum() > 50
    assert not frag.front_facing[0][torch.from_numpy(face_ref == 1)].any()


def test_near_plane_crossing_triangle():
    # a floor just below the eye (y = -0.02) reaching behind the camera: the near plane (0.1) cuts it at
    # NDC y = -0.02 f / 0.1 = -0.48, i.e. between rows 17 and 18 of 24
    points = [[-0.5, -0.02, -2.0], [0.5, -0.02, -2.0], [0.0, -0.02, 1.0]]
    clip = _world_clip(points)
    frag, face_ref = _compare(clip, [[0, 1, 2]])
    assert (face_ref[13:18] == 0).all() and (face_ref[18:] == -1).all()
    # every drawn sample is in front of the near plane: window depth >= 0 and eye depth >= near
    z = frag.zbuf[0][frag.covered[0]].double()
    near, far = 0.1, 200.0
    assert (near * far / (far - z * (far - near)) >= near - 1e-9).all()


def test_fill_rule_on_pixel_centres():
    """A square with corners on sample points: left/image-bottom edges drawn, right/image-top not."""
    c0, c1, r0, r1 = 5, 12, 4, 9

    def ndc(c, r):
        return [(2 * c + 1) / SIZE - 1, 1 - (2 * r + 1) / SIZE, 0.0, 1.0]
    clip = np.array([ndc(c0, r0), ndc(c1, r0), ndc(c1, r1), ndc(c0, r1)])
    frag, face_ref = _compare(clip, [[0, 3, 2], [0, 2, 1]])  # split along the diagonal through sample points
    covered = face_ref >= 0
    expected = np.zeros_like(covered)
    expected[r0 + 1:r1 + 1, c0:c1] = True
    np.testing.assert_array_equal(covered, expected)


def test_shared_edges_cover_each_sample_once():
    """A fan of triangles around a vertex on a sample point: no gaps, no double coverage."""
    center = [(2 * 11 + 1) / SIZE - 1, 1 - (2 * 11 + 1) / SIZE, 0.0, 1.0]
    ring = [[math.cos(a) * 0.7, math.sin(a) * 0.7, 0.0, 1.0] for a in np.linspace(0, 2 * math.pi, 9)[:-1]]
    clip = np.array([center] + ring)
    faces = [[0, 1 + k, 1 + (k + 1) % 8] for k in range(8)]
    frames = torch.arange(8)  # each face in its own frame: count coverage without z-test
    frag = rasterize(torch.from_numpy(clip), torch.tensor(faces), frames, 8, SIZE)
    count = frag.covered.sum(0).numpy()
    octagon = count > 0
    assert count.max() == 1 and octagon[11, 11] and octagon.sum() > 60
    assert not (octagon[1:-1, 1:-1] & ~octagon[:-2, 1:-1] & ~octagon[2:, 1:-1]).any()  # no holes/slits


def test_equal_depth_earlier_face_wins():
    clip = _world_clip([[-0.5, -0.5, -1.5], [0.5, -0.5, -1.5], [0.0, 0.5, -1.5]])
    clip = np.concatenate([clip, clip])
    frag = _run(clip, [[0, 1, 2], [3, 4, 5]])
    assert frag.covered[0].any() and (frag.pix_to_face[0][frag.covered[0]] == 0).all()


def test_perspective_correct_barycentrics_and_depth():
    """Interpolating the world position with the barycentrics gives a point on the pixel's ray."""
    world = np.array([[-1.0, -0.8, -1.2], [1.2, -0.6, -3.5], [0.1, 1.0, -2.0]])
    clip = _world_clip(world)
    frag = _run(clip, [[0, 1, 2]])
    rows, cols = torch.nonzero(frag.covered[0], as_tuple=True)
    points = frag.bary[0][rows, cols].double().numpy() @ world
    f = 1 / math.tan(math.radians(22.5))
    x_ndc, y_ndc = f * points[:, 0] / -points[:, 2], f * points[:, 1] / -points[:, 2]
    np.testing.assert_allclose(x_ndc, (2 * cols.numpy() + 1) / SIZE - 1, atol=1e-5)
    np.testing.assert_allclose(y_ndc, 1 - (2 * rows.numpy() + 1) / SIZE, atol=1e-5)
    near, far = 0.1, 200.0
    z = frag.zbuf[0][rows, cols].double().numpy()
    np.testing.assert_allclose(near * far / (far - z * (far - near)), -points[:, 2], rtol=1e-5)


def test_frames_batched_equal_one_by_one_and_chunking_is_invisible():
    rng = np.random.default_rng(3)
    clips, faces = [], []
    for k in range(3):
        world = np.append(rng.uniform(-0.8, 0.8, (12, 2)), -rng.uniform(1, 3, (12, 1)), 1)
        clips.append(_world_clip(world))
        faces.append(rng.integers(0, 12, (10, 3)))
    together = rasterize(torch.from_numpy(np.concatenate(clips)),
                         torch.from_numpy(np.concatenate([f + 12 * k for k, f in enumerate(faces)])),
                         torch.arange(3).repeat_interleave(10), 3, SIZE,
                         settings=settings_for("cpu").replace(fragment_budget=64, dense_budget=64))
    for k in range(3):
        alone = _run(clips[k], faces[k])
        face = together.pix_to_face[k]
        np.testing.assert_array_equal(torch.where(face >= 0, face - 10 * k, face).numpy(), alone.pix_to_face[0].numpy())
        assert torch.equal(together.zbuf[k], alone.zbuf[0]) and torch.equal(together.bary[k], alone.bary[0])


def test_back_discard_removes_fragments_and_their_depth():
    # a near back face whose third vertex carries the value 1: fragments with interpolated value > 0.5 vanish
    world = [[-4, -4, -3.0], [4, -4, -3.0], [0, 4, -3.0], [-1, -1, -1.5], [0, 1, -1.5], [1, -1, -1.5]]
    clip = _world_clip(world)
    values = torch.tensor([0, 0, 0, 0, 1, 0], dtype=torch.float64)
    frag = _run(clip, [[0, 1, 2], [3, 4, 5]], back_discard=BackDiscard(values, 0.5))
    plain = _run(clip, [[0, 1, 2], [3, 4, 5]])
    near_face = plain.pix_to_face[0] == 1
    top = frag.bary[0][..., 1] > 0.5
    assert (frag.pix_to_face[0][near_face] >= 0).all()  # discarded samples show the far face instead
    assert ((frag.pix_to_face[0] == 0) & near_face).any() and ((frag.pix_to_face[0] == 1) & near_face).any()
    assert not (top & (frag.pix_to_face[0] == 1)).any()
    interp = plain.bary[0][..., 1][(frag.pix_to_face[0] == 0) & near_face]
    assert (interp > 0.5 - 1e-6).all()


def test_empty_and_degenerate_inputs():
    clip = np.array([[0.0, 0, 0, 1], [0.5, 0, 0, 1], [1.0, 0, 0, 1]])  # collinear
    frag = _run(clip, [[0, 1, 2]])
    assert not frag.covered.any() and (frag.zbuf == 1).all()
    empty = rasterize(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, 3, dtype=torch.int64),
                      torch.zeros(0, dtype=torch.int64), 2, 8)
    assert empty.pix_to_face.shape == (2, 8, 8) and (empty.pix_to_face == -1).all()


@pytest.mark.gpu
def test_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    world = np.append(rng.uniform(-0.8, 0.8, (30, 2)), -rng.uniform(1, 3, (30, 1)), 1)
    clip, faces = torch.from_numpy(_world_clip(world)), torch.from_numpy(rng.integers(0, 30, (40, 3)))
    frames = torch.zeros(40, dtype=torch.int64)
    cpu = rasterize(clip, faces, frames, 1, 64)
    gpu = rasterize(clip.cuda(), faces.cuda(), frames.cuda(), 1, 64)
    assert torch.equal(cpu.pix_to_face, gpu.pix_to_face.cpu()) and torch.equal(cpu.zbuf, gpu.zbuf.cpu())
