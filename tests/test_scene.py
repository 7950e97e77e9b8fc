"""Scene files: round trip, and refusal of pickles, non-scenes, unknown versions, bad shapes."""

import pickle

import numpy as np
import pytest
import torch

from ivid.scene import SCENE_VERSION, SceneError, load_scene, save_scene


def _views(count=3, size=8, seed=0):
    rng = np.random.default_rng(seed)
    views = []
    for i in range(count):
        modelview = np.eye(4)
        modelview[2, 3] = -1.0 - 0.1 * i
        views.append({
            "rgb": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
            "depth": rng.uniform(0.6, 5.0, (size, size)).astype(np.float32),
            "modelview": modelview,
            "fov": 45.0,
        })
    return views


def test_round_trip(tmp_path):
    views = _views()
    path = tmp_path / "scenes" / "class003_seed00000.npz"
    save_scene(path, views, metadata={"class": 3, "seed": 0, "viewset": "3x9"})
    loaded, metadata = load_scene(path, return_metadata=True)
    assert metadata == {"class": 3, "seed": 0, "viewset": "3x9"}
    assert len(loaded) == len(views)
    for got, want in zip(loaded, views):
        assert got["rgb"].dtype == np.uint8 and got["depth"].dtype == np.float32
        assert got["modelview"].dtype == np.float64 and isinstance(got["fov"], float)
        np.testing.assert_array_equal(got["rgb"], want["rgb"])
        np.testing.assert_array_equal(got["depth"], want["depth"])
        np.testing.assert_array_equal(got["modelview"], want["modelview"])
        assert got["fov"] == want["fov"]
    assert load_scene(str(path))[0]["depth"].shape == (8, 8)
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temporary left behind
    with np.load(path, allow_pickle=False) as raw:
        assert int(raw["ivid_scene_version"]) == SCENE_VERSION
        assert raw["rgb"].shape == (3, 8, 8, 3) and raw["fov"].shape == (3,)


def test_accepts_tensors_and_trailing_depth_axis(tmp_path):
    views = _views(count=2)
    views[0] = {**views[0], "rgb": torch.from_numpy(views[0]["rgb"]), "depth": views[0]["depth"][..., None]}
    save_scene(tmp_path / "s.npz", views)
    loaded, metadata = load_scene(tmp_path / "s.npz", return_metadata=True)
    assert metadata == {} and loaded[0]["depth"].shape == (8, 8)


def test_refuses_pickled_content(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, ivid_scene_version=np.array(1), rgb=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(SceneError, match="pickled.npz.*object"):
        load_scene(path)
    raw_pickle = tmp_path / "raw.npz"
    raw_pickle.write_bytes(pickle.dumps({"rgb": 1}))
    with pytest.raises(SceneError, match="raw.npz"):
        load_scene(raw_pickle)


def test_refuses_non_scenes_and_corruption(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, arr_0=np.zeros(3))
    with pytest.raises(SceneError, match="other.npz: not an ivid scene"):
        load_scene(other)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(SceneError, match="notes.npz"):
        load_scene(text)
    good = tmp_path / "good.npz"
    save_scene(good, _views())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SceneError, match="truncated.npz"):
        load_scene(truncated)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(SceneError, match="single.npy"):
        load_scene(single)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_scene(tmp_path / "missing.npz")


def test_refuses_unknown_version_and_bad_shapes(tmp_path):
    views = _views()
    arrays = {
        "ivid_scene_version": np.array(99),
        "rgb": np.stack([v["rgb"] for v in views]),
        "depth": np.stack([v["depth"] for v in views]),
        "modelview": np.stack([v["modelview"] for v in views]),
        "fov": np.full(3, 45.0),
    }
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(SceneError, match="future.npz: unsupported scene version 99"):
        load_scene(tmp_path / "future.npz")
    np.savez(tmp_path / "short.npz", **{**arrays, "ivid_scene_version": np.array(1), "fov": np.full(2, 45.0)})
    with pytest.raises(SceneError, match="short.npz: 'fov'"):
        load_scene(tmp_path / "short.npz")
    no_depth = {k: v for k, v in arrays.items() if k != "depth"}
    np.savez(tmp_path / "nodepth.npz", **{**no_depth, "ivid_scene_version": np.array(1)})
    with pytest.raises(SceneError, match="nodepth.npz: scene file lacks depth"):
        load_scene(tmp_path / "nodepth.npz")


def test_save_validates_views(tmp_path):
    path = tmp_path / "bad.npz"
    views = _views()
    with pytest.raises(SceneError, match="bad.npz: view 1: rgb"):
        save_scene(path, [views[0], {**views[1], "rgb": views[1]["rgb"].astype(np.float32)}])
    with pytest.raises(SceneError, match="lacks fov"):
        save_scene(path, [{k: v for k, v in views[0].items() if k != "fov"}])
    with pytest.raises(SceneError, match="same image size"):
        save_scene(path, views[:1] + _views(count=1, size=4))
    with pytest.raises(SceneError, match="non-empty"):
        save_scene(path, [])
    with pytest.raises(SceneError, match="metadata"):
        save_scene(path, views, metadata={"x": object()})
    assert not path.exists()


def _cond(size=8, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((size, size)) > 0.4
    return {"rgb": (rng.integers(0, 256, (size, size, 3)) * mask[..., None]).astype(np.uint8),
            "depth": (rng.uniform(0.6, 5.0, (size, size)) * mask).astype(np.float32), "mask": mask,
            "mask_rgb": mask & (rng.random((size, size)) > 0.5)}


def test_conditions_round_trip_and_stay_optional(tmp_path):
    views = _views()
    conds = [None, _cond(seed=1), _cond(seed=2)]
    save_scene(tmp_path / "c.npz", [{**v, "cond": c} for v, c in zip(views, conds)])
    loaded = load_scene(tmp_path / "c.npz")
    assert not loaded[0]["cond"]["mask"].any() and not loaded[0]["cond"]["mask_rgb"].any()
    assert not loaded[0]["cond"]["rgb"].any() and not loaded[0]["cond"]["depth"].any()
    for got, want in zip(loaded[1:], conds[1:]):
        for key in ("rgb", "depth", "mask", "mask_rgb"):
            np.testing.assert_array_equal(got["cond"][key], want[key])
        assert got["cond"]["mask"].dtype == bool and got["cond"]["depth"].dtype == np.float32
    save_scene(tmp_path / "plain.npz", views)  # no condition anywhere: no cond arrays, no "cond" key
    with np.load(tmp_path / "plain.npz") as raw:
        assert not [k for k in raw.files if k.startswith("cond_")]
    assert "cond" not in load_scene(tmp_path / "plain.npz")[0]


def test_refuses_partial_or_misshapen_conditions(tmp_path):
    views = _views()
    with pytest.raises(SceneError, match="bad.npz: view 1: cond"):
        save_scene(tmp_path / "bad.npz", [views[0], {**views[1], "cond": {"rgb": np.zeros((8, 8, 3), np.uint8)}}])
    save_scene(tmp_path / "c.npz", [{**v, "cond": _cond()} for v in views])
    with np.load(tmp_path / "c.npz") as raw:
        arrays = {k: raw[k] for k in raw.files}
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "cond_mask_rgb"})
    with pytest.raises(SceneError, match="partial.npz: scene file holds cond_rgb"):
        load_scene(tmp_path / "partial.npz")
    np.savez(tmp_path / "shape.npz", **{**arrays, "cond_depth": arrays["cond_depth"][:, :4]})
    with pytest.raises(SceneError, match="shape.npz: 'cond_depth'"):
        load_scene(tmp_path / "shape.npz")
