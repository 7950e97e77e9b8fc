"""Vertex attributes, shaders and the aggregation fold against hand-computed values (docs/design.md#rendering)."""

import math

import pytest
import torch

from ivid.geometry.renderer import (AggregationAccumulator, ClipPlanes, FragmentAttributes, RowFragments,
                                    VertexAttributes, interpolate_attributes, pack_attributes, window_to_linear)
from ivid.geometry.renderer.attributes import interpolate
from ivid.geometry.renderer.shade import aggregation_weight, sample_nearest, simple_shade, texel_table


def _fragments(face, bary, front, zbuf=None):
    """A block of 1 row of P pixels with given winning faces / barycentrics (face -1 = empty)."""
    face = torch.tensor(face).view(1, -1)
    covered = face >= 0
    zbuf = torch.ones(face.shape) if zbuf is None else torch.tensor(zbuf).view(face.shape)
    return RowFragments(face=face.clamp_min(0), covered=covered, zbuf=zbuf,
                        front=torch.tensor(front).view(face.shape) & covered,
                        bary=torch.tensor(bary, dtype=torch.float32).view(-1, 3))


def test_interpolate_is_barycentric_and_zero_when_empty():
    faces = torch.tensor([[0, 1, 2]])
    values = torch.tensor([[1.0, 2.0, 4.0], [0.0, 1.0, 0.0]]).T  # (V=3, C=2)
    frag = _fragments([0, -1], [[0.5, 0.25, 0.25], [0.0, 0.0, 0.0]], [True, False])  # bary 0 if empty
    out = interpolate(frag.face.reshape(-1), frag.bary, faces, values)
    assert out.shape == (2, 2) and out.is_contiguous()
    assert torch.allclose(out[:, 0], torch.tensor([0.5 + 0.5 + 1.0, 0.25]))
    assert (out[:, 1] == 0).all()


def test_sample_nearest_floor_and_clamp():
    texture = torch.arange(16, dtype=torch.float32).view(1, 4, 4, 1)
    uv = torch.tensor([[0.0, 0.0], [0.2499, 0.25], [0.99, 0.74], [1.3, -0.2]]).T  # (2, P)
    out = sample_nearest(texel_table(texture), (4, 4), torch.zeros(4, dtype=torch.int64), uv)[0]
    assert out.tolist() == [0.0, 4.0, 11.0, 3.0]  # (row, col): (0,0), (1,0), (2,3), clamped (0,3)
    two = torch.cat([texture, texture + 100])  # the second texture starts at texel 16
    second = sample_nearest(texel_table(two), (4, 4), torch.full((4,), 16), uv)[0]
    assert second.tolist() == [100.0, 104.0, 111.0, 103.0]


def test_simple_shade_edge_alpha_uses_interpolated_flag():
    faces = torch.tensor([[0, 1, 2]])
    uv = torch.tensor([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]])
    texture = torch.rand(1, 8, 8, 3)
    is_edge = torch.tensor([1.0, 1.0, 0.0])  # two of three vertices flagged: interpolated < 0.999 inside
    frag = _fragments([0, 0, 0, -1], [[0.3, 0.3, 0.4], [0.4996, 0.4996, 0.0008], [0.3, 0.3, 0.4], [0, 0, 0]],
                      [True, True, False, False])
    packed = pack_attributes(VertexAttributes(uv=uv, is_edge=is_edge.view(-1, 1)))
    attributes = interpolate_attributes(packed, frag, faces)
    color, alpha = simple_shade(frag, attributes, texel_table(texture), (8, 8), torch.zeros(1, 1, dtype=torch.int64))
    assert alpha[0].tolist() == [1.0, 0.0, 0.0, 0.0]  # front / edge > 0.999 / back / empty
    assert (color[:, 0, 2] == 0).all() and (color[:, 0, 3] == 0).all()
    assert torch.equal(color[:, 0, 0], texture[0, 3, 2])  # uv = (0.34, 0.42) -> texel row 3, col 2


def test_aggregation_weight_rules():
    position = torch.zeros(3, 6)
    center = torch.tensor([0.0, 0.0, 1.0]).view(3, 1)
    angle = torch.tensor([0.0, 0.05, 0.6, 0.0, 0.0, 0.0])
    normal = torch.stack([torch.sin(angle), torch.zeros(6), torch.cos(angle)]) * 3  # not unit: normalised inside
    flags = torch.zeros(3, 6)
    flags[2, 3] = 1.0  # eroded
    flags[1, 4] = 0.002  # touches padding
    flags[0, 5] = 0.9995  # interpolated edge
    attributes = FragmentAttributes(position=position, normal=normal, is_edge=flags[0], is_padding=flags[1],
                                    is_eroded=flags[2])
    weight = aggregation_weight(attributes, center)
    expected = [1.0, math.exp(-20 * 0.05), 1e-4, 1e-8, 1e-16, 1e-16]  # 0.6 rad > 26.4 deg -> floor 1e-4
    assert torch.allclose(weight.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4)


def _fold(meshes, host_checks=None):
    """Fold meshes given as per-pixel (weight, window depth, grey colour) lists, in order."""
    acc = AggregationAccumulator.zeros(1, 1, len(meshes[0]), torch.device("cpu"), host_checks)
    for mesh in meshes:
        weight = torch.tensor([w for w, _, _ in mesh], dtype=torch.float32).view(1, -1)
        zbuf = torch.tensor([z for _, z, _ in mesh], dtype=torch.float32).view(1, -1)
        color = torch.tensor([c for _, _, c in mesh], dtype=torch.float32).view(1, 1, -1).expand(3, 1, -1)
        acc.fold(color, weight, zbuf)
    return acc


def test_fold_rows_update_only_their_slice():
    acc = AggregationAccumulator.zeros(2, 2, 3, torch.device("cpu"))  # (B * H, W) = (4, 3) rows
    acc.fold(torch.ones(3, 2, 3), torch.ones(2, 3), torch.full((2, 3), 0.5), rows=slice(1, 3))
    assert acc.count_depth.view(4, 3).sum(1).tolist() == [0, 3, 3, 0]
    assert torch.equal(acc.depth_sum.view(4, 3)[1:3], torch.full((2, 3), 0.5))


def test_fold_weights_fallbacks_and_counters():
    pixels = [
        [(1.0, 0.5, 0.2), (0.5, 0.8, 0.8)],  # two real contributions: weighted averages
        [(1e-16, 0.5, 0.2), (1e-16, 0.9, 0.7)],  # fallbacks only: keep the farther one (depth and colour)
        [(1e-16, 0.9, 0.7), (1e-16, 0.5, 0.2)],  # ... in either order
        [(1e-16, 0.9, 0.7), (0.25, 0.3, 0.4)],  # a real contribution after a fallback dominates
        [(1e-10, 0.6, 0.3), (0.0, 1.0, 0.0)],  # eroded: full depth weight, colour weight tiny; empty mesh
        [(0.0, 0.4, 0.0), (0.0, 1.0, 0.0)],  # back face only: no weight at all -> window depth 0 (near)
    ]
    acc = _fold([[p[0] for p in pixels], [p[1] for p in pixels]])
    out = acc.read_back(ClipPlanes(0.01, 200.0))
    color = out["color"][0, 0, :, 0]
    window = [(1.0 * 0.5 + 1.0 * 0.8) / 2, 0.9, 0.9, (1e-8 * 0.9 + 0.3) / (1 + 1e-8), 0.6, 0.0]
    expected_depth = window_to_linear(torch.tensor(window), ClipPlanes(0.01, 200.0))
    assert torch.allclose(out["depth"][0, 0], expected_depth, rtol=1e-5)
    expected_color = [(0.2 + 0.5 * 0.8) / 1.5, 0.7, 0.7, 0.4, 0.3, 0.0]
    assert torch.allclose(color, torch.tensor(expected_color), atol=1e-6)
    assert out["mask_depth"][0, 0].tolist() == [True, False, False, True, True, False]
    assert out["mask_color"][0, 0].tolist() == [True, False, False, True, False, False]
    assert acc.count_depth[0, 0].tolist() == [2, 0, 0, 1, 1, 0]
    assert torch.allclose(acc.depth_weight[0, 0], torch.tensor([2, 1e-8, 1e-8, 1 + 1e-8, 1, 0]))


def test_fold_host_checks_do_not_change_the_sums():
    """The settled-block shortcut (CPU default) and the always-blend path (accelerators) fold to the same bits."""
    rng = torch.Generator().manual_seed(0)
    meshes = []
    for _ in range(4):
        weight = torch.rand(64, generator=rng)
        weight[torch.rand(64, generator=rng) < 0.4] = 1e-16
        weight[torch.rand(64, generator=rng) < 0.2] = 0.0
        meshes.append(list(zip(weight.tolist(), torch.rand(64, generator=rng).tolist(),
                               torch.rand(64, generator=rng).tolist())))
    fast, plain = _fold(meshes, host_checks=True), _fold(meshes, host_checks=False)
    for name in ("color_sum", "color_weight", "depth_sum", "depth_weight", "count_depth", "count_color"):
        assert torch.equal(getattr(fast, name), getattr(plain, name)), name


def test_window_to_linear_planes():
    depth = window_to_linear(torch.tensor([0.0, 1.0, 0.5]), ClipPlanes(0.1, 200.0))
    assert torch.allclose(depth, torch.tensor([0.1, 200.0, 0.1 * 200 / (200 - 0.5 * 199.9)]), rtol=1e-4)
    # float32 like the reference: its cleared pixels read back as 199.9878 (render/warp_room128_identity.npz)
    assert abs(float(depth[1]) - 199.9878) < 1e-4


def test_packed_attributes_come_back_by_name():
    """Packing order is internal: every attribute interpolates to its own values, whatever else is packed."""
    faces = torch.tensor([[0, 1, 2]])
    vertex = VertexAttributes(position=torch.tensor([[0.0, 0, -1], [1, 0, -1], [0, 1, -1]]),
                              uv=torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
                              is_padding=torch.tensor([[0.0], [1.0], [0.0]]))
    frag = _fragments([0, 0], [[1.0, 0.0, 0.0], [0.25, 0.5, 0.25]], [True, True])
    out = interpolate_attributes(pack_attributes(vertex), frag, faces)
    assert out.normal is None and out.is_edge is None
    assert out.uv.shape == (2, 1, 2) and out.is_padding.shape == (1, 2)
    assert torch.allclose(out.uv[:, 0, 1], torch.tensor([0.5, 0.25]))
    assert torch.allclose(out.position[:, 0, 1], torch.tensor([0.5, 0.25, -1.0]))
    assert out.is_padding[0].tolist() == [0.0, 0.5]
    with pytest.raises(ValueError, match="uv"):
        pack_attributes(VertexAttributes(uv=torch.zeros(3, 3)))
