"""ivid.render.export: binary PLY that parses back, vertex/face counts on analytic scenes."""

import numpy as np
import pytest

from ivid.geometry import viewset
from ivid.render.export import export_scene_ply, write_ply

_PLY_TYPES = {"float": "<f4", "uchar": "u1", "int": "<i4", "uint": "<u4"}


def read_ply(path):
    """Minimal independent parser of binary little-endian PLY (vertex + triangle faces)."""
    data = open(path, "rb").read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[0] == "ply" and header[1] == "format binary_little_endian 1.0"
    elements, current = [], None
    for line in header[2:]:
        words = line.split()
        if words[0] == "element":
            current = [words[1], int(words[2]), []]
            elements.append(current)
        elif words[0] == "property":
            current[2].append(words[1:])
    out, offset = {}, end
    for name, count, props in elements:
        if name == "vertex":
            dtype = np.dtype([(p[1], _PLY_TYPES[p[0]]) for p in props])
        else:
            (kind, count_t, index_t, pname), = props
            assert kind == "list"
            dtype = np.dtype([("n", _PLY_TYPES[count_t]), (pname, _PLY_TYPES[index_t], (3,))])
        out[name] = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += dtype.itemsize * count
    assert offset == len(data)
    return out


def _plane_view(depth, modelview, rgb_value=(10, 20, 30)):
    s = depth.shape[0]
    return {"rgb": np.broadcast_to(np.array(rgb_value, np.uint8), (s, s, 3)).copy(), "depth": depth.astype(np.float32),
            "modelview": modelview, "fov": 45.0}


def test_write_ply_round_trip(tmp_path):
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    col = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    write_ply(str(tmp_path / "t.ply"), pos, col, faces=np.array([[0, 1, 2]]))
    ply = read_ply(tmp_path / "t.ply")
    assert np.array_equal(np.stack([ply["vertex"][a] for a in "xyz"], 1), pos)
    assert np.array_equal(ply["vertex"]["green"], [0, 255, 0])
    assert np.array_equal(ply["face"]["vertex_indices"], [[0, 1, 2]]) and ply["face"]["n"][0] == 3


def test_scene_mesh_counts_and_positions(tmp_path):
    s = 6
    cams = viewset("3x9")[:2]
    flat = np.full((s, s), 2.0)
    step = flat.copy()
    step[:, 3:] = 4.0  # a depth discontinuity between columns 2 and 3
    views = [_plane_view(flat, cams[0]), _plane_view(step, cams[1], (200, 100, 0))]
    info = export_scene_ply(str(tmp_path / "s.ply"), views, "mesh", atol=0.03, rtol=0.03)
    ply = read_ply(tmp_path / "s.ply")
    assert info["vertices"] == len(ply["vertex"]) == 2 * s * s
    # view 0 keeps all 2*(s-1)^2 faces; view 1 loses the 2*(s-1) faces of the quad column across the step
    assert info["faces"] == len(ply["face"]) == 2 * (s - 1) ** 2 + 2 * (s - 1) ** 2 - 2 * (s - 1)
    assert ply["face"]["vertex_indices"].max() < 2 * s * s
    # view 0 is the canonical camera at z=+1: the plane at depth 2 lies at world z = -1
    np.testing.assert_allclose(ply["vertex"]["z"][: s * s], -1.0, atol=1e-6)
    assert (ply["vertex"]["red"][: s * s] == 10).all() and (ply["vertex"]["red"][s * s:] == 200).all()
    normals = np.stack([ply["vertex"][a] for a in ("nx", "ny", "nz")], 1)[: s * s]
    np.testing.assert_allclose(normals, np.tile([0, 0, 1.0], (s * s, 1)), atol=1e-5)


def test_point_cloud_and_bad_mode(tmp_path):
    views = [_plane_view(np.full((4, 4), 1.5), viewset("uncond")[0])]
    assert export_scene_ply(str(tmp_path / "p.ply"), views, "points") == {"vertices": 16, "faces": 0}
    assert "face" not in read_ply(tmp_path / "p.ply")
    with pytest.raises(ValueError, match="--ply_mode"):
        export_scene_ply(str(tmp_path / "x.ply"), views, "voxels")
