"""ivid.render.export.export_scene_glb and render.py --export glb: binary glTF that two readers load back."""

import json
import os
import struct

import numpy as np
import pytest

from ivid.geometry import viewset
from ivid.render.export import export_scene_glb, scene_geometry, srgb_to_linear_u8
from ivid.scene import save_scene
from repo_scripts import load_script

pytest.importorskip("trimesh", reason="the app extra (trimesh) writes glTF")

_COMPONENTS = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}


def read_glb(path):
    """Minimal independent GLB 2.0 reader: (json tree, {attribute: array}, indices) of the first primitive."""
    data = open(path, "rb").read()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and length == len(data)
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    tree = json.loads(data[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\x00"
    blob = data[28 + json_len:28 + json_len + bin_len]

    def accessor(index):
        acc = tree["accessors"][index]
        view = tree["bufferViews"][acc["bufferView"]]
        dtype = np.dtype(_COMPONENTS[acc["componentType"]]).newbyteorder("<")
        width = _WIDTH[acc["type"]]
        offset = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        assert view.get("byteStride", dtype.itemsize * width) == dtype.itemsize * width
        arr = np.frombuffer(blob, dtype=dtype, count=acc["count"] * width, offset=offset)
        return arr.reshape(acc["count"], width) if width > 1 else arr

    (primitive,) = tree["meshes"][0]["primitives"]
    attributes = {name: accessor(i) for name, i in primitive["attributes"].items()}
    return tree, attributes, accessor(primitive["indices"]).reshape(-1, 3), primitive


def _plane_view(depth, modelview, rgb_value):
    s = depth.shape[0]
    return {"rgb": np.broadcast_to(np.array(rgb_value, np.uint8), (s, s, 3)).copy(), "depth": depth.astype(np.float32),
            "modelview": modelview, "fov": 45.0}


def _two_views(s=6):
    cams = viewset("3x9")[:2]
    step = np.full((s, s), 2.0)
    step[:, 3:] = 4.0  # a depth discontinuity between columns 2 and 3 of view 1
    return [_plane_view(np.full((s, s), 2.0), cams[0], (10, 20, 30)), _plane_view(step, cams[1], (200, 100, 0))]


def test_glb_holds_the_scene_mesh(tmp_path):
    s = 6
    views = _two_views(s)
    info = export_scene_glb(str(tmp_path / "s.glb"), views, atol=0.03, rtol=0.03)
    tree, attrs, faces, primitive = read_glb(tmp_path / "s.glb")
    # every pixel of every view is a vertex; view 1 loses the 2*(s-1) faces across its step
    assert info["vertices"] == len(attrs["POSITION"]) == 2 * s * s  # every vertex is in a face here
    assert info["faces"] == len(faces) == 4 * (s - 1) ** 2 - 2 * (s - 1)
    # view 0 is the canonical camera at z=+1 (glTF's frame too): its plane at depth 2 lies at world z = -1
    np.testing.assert_allclose(attrs["POSITION"][: s * s, 2], -1.0, atol=1e-6)
    geometry = scene_geometry(views, 0.03, 0.03)
    np.testing.assert_array_equal(attrs["POSITION"], geometry["position"])
    np.testing.assert_array_equal(faces, geometry["faces"])
    # glTF vertex colours are linear: sRGB 200 -> 0.578 -> 147, 100 -> 0.127 -> 32, 30 -> 0.0130 -> 3, 10 -> 1
    assert (attrs["COLOR_0"][: s * s, :3] == [1, 2, 3]).all() and (attrs["COLOR_0"][s * s:, :3] == [147, 32, 0]).all()
    np.testing.assert_allclose(attrs["NORMAL"][: s * s], np.tile([0, 0, 1.0], (s * s, 1)), atol=1e-5)
    # unlit, double-sided: the viewer shows the sampled colours as they are
    material = tree["materials"][primitive["material"]]
    assert "KHR_materials_unlit" in material["extensions"] and material["doubleSided"] is True
    assert "KHR_materials_unlit" in tree["extensionsUsed"]


def test_glb_leaves_out_vertices_no_face_uses(tmp_path):
    s = 8
    depth = np.full((s, s), 2.0)
    depth[4, 4] = 4.0  # a one-pixel spike: every face around it lies on the depth edge
    views = [_plane_view(depth, viewset("uncond")[0], (50, 60, 70))]
    geometry = scene_geometry(views, 0.03, 0.03)
    used = np.unique(geometry["faces"])
    assert 4 * s + 4 not in used  # the spike's pixel (row 4, column 4) is in no face
    info = export_scene_glb(str(tmp_path / "spike.glb"), views, 0.03, 0.03)
    _, attrs, faces, _ = read_glb(tmp_path / "spike.glb")
    assert info["vertices"] == len(attrs["POSITION"]) == len(used) < s * s
    np.testing.assert_array_equal(attrs["POSITION"], geometry["position"][used])
    np.testing.assert_array_equal(attrs["POSITION"][faces], geometry["position"][geometry["faces"]])
    assert attrs["POSITION"][:, 2].min() > -2.0  # the spike at world z = 1 - 4 = -3 is gone


def test_glb_loads_in_trimesh_with_the_same_vertices(tmp_path):
    import trimesh

    views = _two_views()
    export_scene_glb(str(tmp_path / "s.glb"), views)
    loaded = trimesh.load(str(tmp_path / "s.glb"), process=False)
    (mesh,) = loaded.geometry.values()
    geometry = scene_geometry(views)
    np.testing.assert_allclose(mesh.vertices, geometry["position"], atol=1e-6)
    assert len(mesh.faces) == len(geometry["faces"])
    # with a material, trimesh keeps COLOR_0 as a vertex attribute of its texture visuals
    np.testing.assert_array_equal(mesh.visual.vertex_attributes["color"][:, :3], srgb_to_linear_u8(geometry["color"]))


def test_glb_of_a_scene_without_faces_is_refused(tmp_path):
    checker = np.where(np.indices((4, 4)).sum(0) % 2 == 0, 2.0, 4.0)  # every pixel on a depth edge
    views = [_plane_view(checker, viewset("uncond")[0], (1, 2, 3))]
    with pytest.raises(ValueError, match="no faces"):
        export_scene_glb(str(tmp_path / "none.glb"), views)
    assert not os.path.exists(tmp_path / "none.glb")


def test_glb_write_is_atomic_and_leaves_no_temporary(tmp_path):
    export_scene_glb(str(tmp_path / "m" / "a.glb"), _two_views())
    assert os.listdir(tmp_path / "m") == ["a.glb"]


def _load_cli():
    return load_script("inference/render.py", "render_cli_glb")


def test_render_cli_exports_glb_next_to_ply(tmp_path):
    cli = _load_cli()
    views = _two_views(8)
    save_scene(tmp_path / "run" / "scenes" / "a.npz", views)
    for kind in ("glb", "ply"):
        cli.main(cli.parse_args(["--scene_dir", str(tmp_path / "run" / "scenes"), "--traj", "none", "--export", kind,
                                 "--device", "cpu", "--no_progress"]))
    assert sorted(os.listdir(tmp_path / "run" / "meshes")) == ["a.glb", "a.ply"]
    _, attrs, _, _ = read_glb(tmp_path / "run" / "meshes" / "a.glb")
    assert len(attrs["POSITION"]) == 2 * 8 * 8


def test_render_on_frame_reports_every_frame_and_can_stop(tmp_path):
    from ivid.render.free_view import RenderRequest, run_render

    save_scene(tmp_path / "scenes" / "a.npz", _two_views(8))
    calls = []
    request = RenderRequest(scene_dir=str(tmp_path / "scenes"), frames=3, device="cpu", progress=False)
    run_render(request, on_frame=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop()

    with pytest.raises(Stop):
        run_render(RenderRequest(scene_dir=str(tmp_path / "scenes"), output_dir=str(tmp_path / "b"), frames=3,
                                 device="cpu", progress=False), on_frame=stop)
    assert not os.path.exists(tmp_path / "b" / "videos" / "a.mp4")  # nothing half-written


def test_srgb_to_linear_known_values():
    # the sRGB transfer function: 0 and 255 fixed, mid-grey 128 -> 0.2159 (55), the linear toe below 0.04045
    np.testing.assert_array_equal(srgb_to_linear_u8(np.array([0, 10, 128, 188, 255])), [0, 1, 55, 128, 255])
