"""scripts/convert_reference_scenes.py: reference scene files (pickled object array of view dicts with PNG
bytes and glm matrices) convert to ivid scenes; anything else in the pickle is refused before it runs."""

import copyreg
import io
import os
import pickle
import pickletools
import sys
import types
import zipfile

import numpy as np
import pytest
from PIL import Image

from ivid.geometry import viewset
from ivid.scene import load_scene
from repo_scripts import load_script

S = 8


convert = load_script("scripts/convert_reference_scenes.py", "convert_reference_scenes")


@pytest.fixture
def fake_glm(monkeypatch):
    """A module 'glm' whose mat4x4 pickles as PyGLM's does: the class, no arguments (NEWOBJ), then its four
    columns as the BUILD state. (PyGLM itself is not needed to write the reference's format.)"""
    module = types.ModuleType("glm")

    class mat4x4:  # noqa: N801 (PyGLM's name)
        def __init__(self, columns):
            self.columns = columns

        def __reduce__(self):
            return copyreg.__newobj__, (type(self),), self.columns

    mat4x4.__module__, mat4x4.__qualname__ = "glm", "mat4x4"
    module.mat4x4 = mat4x4
    monkeypatch.setitem(sys.modules, "glm", module)
    return module


def _png(array, mode):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _reference_views(glm, count=3, seed=0):
    """Views as the reference's save_scene stores them, plus the arrays they encode."""
    rng = np.random.default_rng(seed)
    stored, expected = [], []
    for modelview in viewset("3x9")[:count]:
        rgb = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
        depth = rng.uniform(0.6, 5.0, (S, S)).astype(np.float32)
        packed = np.ascontiguousarray(depth.astype("<f4")).view(np.uint8).reshape(S, S, 4)
        columns = tuple(tuple(float(v) for v in column) for column in np.asarray(modelview).T)  # glm: column-major
        stored.append({"color": _png(rgb, "RGB"), "depth": _png(packed, "RGBA"), "fov": 45.0,
                       "modelview": glm.mat4x4(columns)})
        expected.append({"rgb": rgb, "depth": depth, "modelview": np.asarray(modelview, np.float64)})
    return stored, expected


def test_a_reference_scene_converts(tmp_path, fake_glm, capsys):
    stored, expected = _reference_views(fake_glm)
    (tmp_path / "ref").mkdir()
    np.savez_compressed(tmp_path / "ref" / "scene_class001_seed00001.npz", data=stored)  # as the reference
    raw = zipfile.ZipFile(tmp_path / "ref" / "scene_class001_seed00001.npz").read("data.npy")
    globals_used = [arg for op, arg, _ in pickletools.genops(raw[raw.index(b"\x80"):])
                    if op.name in ("SHORT_BINUNICODE", "GLOBAL") and arg in ("mat4x4", "glm mat4x4")]
    assert globals_used  # the file really holds pickled glm matrices
    status = convert.main(convert.parse_args([str(tmp_path / "ref"), "--output_dir", str(tmp_path / "out")]))
    assert status == 0
    assert "3 views" in capsys.readouterr().out
    views, metadata = load_scene(tmp_path / "out" / "scene_class001_seed00001.npz", return_metadata=True)
    assert metadata == {"converted_from": "scene_class001_seed00001.npz", "format": "reference"}
    assert len(views) == 3
    for view, want in zip(views, expected):
        assert np.array_equal(view["rgb"], want["rgb"])
        assert np.array_equal(view["depth"], want["depth"])  # the float32 bytes, exactly
        np.testing.assert_array_equal(view["modelview"], want["modelview"])
        assert view["fov"] == 45.0


def _malicious_npz(path, payload):
    """An npz whose data.npy announces an object array and holds ``payload``'s pickle."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    buffer.write(pickle.dumps(payload, protocol=3))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.npy", buffer.getvalue())


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["top level", "inside a view dict"])
def test_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path, fake_glm, capsys, where):
    marker = tmp_path / "pwned"
    source = tmp_path / "ref" / "scene_00000.npz"
    source.parent.mkdir()
    if where == "top level":
        _malicious_npz(source, _RunsCode(marker))
    else:
        stored, _ = _reference_views(fake_glm, count=2)
        stored[1]["fov"] = _RunsCode(marker)
        np.savez_compressed(source, data=stored)
    status = convert.main(convert.parse_args([str(source), "--output_dir", str(tmp_path / "out")]))
    assert status == 1
    assert not marker.exists()  # the payload never ran
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(source) in err[0]
    assert "system' is not part of the reference scene format" in err[0]
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("payload,message", [
    ({"not": "an array"}, "does not unpickle to the object array"),
    (np.array([1, 2]), "does not unpickle to the object array"),
])
def test_other_content_is_refused_with_one_line(tmp_path, payload, message):
    source = tmp_path / "x.npz"
    _malicious_npz(source, payload)
    with pytest.raises(convert.RefusedFile, match=message):
        convert.read_reference_views(str(source))


def test_arrays_and_files_that_are_not_reference_scenes(tmp_path, fake_glm):
    np.savez_compressed(tmp_path / "plain.npz", rgb=np.zeros((2, 2)))
    with pytest.raises(convert.RefusedFile, match="no 'data' entry"):
        convert.read_reference_views(str(tmp_path / "plain.npz"))
    np.savez_compressed(tmp_path / "numbers.npz", data=np.zeros(3))
    with pytest.raises(convert.RefusedFile, match="1-D object array"):
        convert.read_reference_views(str(tmp_path / "numbers.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(convert.RefusedFile, match="not a readable .npz"):
        convert.read_reference_views(str(tmp_path / "junk.npz"))
    stored, _ = _reference_views(fake_glm, count=1)
    stored[0]["depth"] = stored[0]["color"]  # a 3-channel image where the float32 depth bytes belong
    np.savez_compressed(tmp_path / "bad_depth.npz", data=stored)
    with pytest.raises(convert.RefusedFile, match="view 0: depth must be an H x W x 4"):
        convert.convert_file(str(tmp_path / "bad_depth.npz"), str(tmp_path / "out.npz"))


def test_output_never_overwrites_the_input(tmp_path, fake_glm, capsys):
    stored, _ = _reference_views(fake_glm, count=1)
    np.savez_compressed(tmp_path / "scene.npz", data=stored)
    status = convert.main(convert.parse_args([str(tmp_path / "scene.npz"), "--output_dir", str(tmp_path)]))
    assert status == 1 and "would overwrite the input" in capsys.readouterr().err
    assert zipfile.ZipFile(tmp_path / "scene.npz").namelist() == ["data.npy"]  # untouched
