"""ivid.sampling.outputs: every file of a sample, grid sizes, scenes, joined background writes."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from ivid.geometry import linearize_depth, viewset
from ivid.sampling.multiview import View
from ivid.sampling.outputs import OutputWriter, run_dir_name
from ivid.sampling.plan import SampleJob
from ivid.geometry.viewsets import parse_viewset
from ivid.scene import load_scene

S = 8


def _views(cams, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = []
    for k, cam in enumerate(cams):
        cond = None
        if k > 0:
            mask = (torch.rand(S, S, 1, generator=g) > 0.3).float()
            cond = {"color": torch.rand(S, S, 3, generator=g) * mask, "depth": torch.rand(S, S, 1, generator=g) * mask,
                    "mask": mask, "mask_rgb": mask, "depth_convex": torch.rand(S, S, 1, generator=g)}
        views.append(View(rgb=torch.rand(S, S, 3, generator=g), z=torch.rand(S, S, generator=g) * 0.9 + 0.05,
                          modelview=np.asarray(cam), cond=cond))
    return views


def _size(path):
    with Image.open(path) as im:
        return im.size


def test_run_dir_name():
    assert run_dir_name("3x9", 1000, 50, 3.0) == "viewset_3x9_steps_u1000_c50_guidance3.0"
    assert run_dir_name("random", 250, 10, 1) == "viewset_random_steps_u250_c10_guidance1.0"
    assert run_dir_name("3x9", 1000, 50, 3.0, "x/photo.jpg") == "image_photo_viewset_3x9_steps_c50_guidance3.0"
    assert run_dir_name("3x9", 1000, 50, 3.0, precision="fp32") == "viewset_3x9_steps_u1000_c50_guidance3.0"
    assert (run_dir_name("3x9", 1000, 50, 3.0, precision="bf16")
            == "viewset_3x9_steps_u1000_c50_guidance3.0_precisionbf16")
    assert (run_dir_name("3x9", 20, 10, 3.0, sampler="dpmpp_2m", precision="bf16")
            == "viewset_3x9_steps_u20_c10_guidance3.0_samplerdpmpp_2m_precisionbf16")


def test_3x9_files_and_grid_sizes(tmp_path):
    choice = parse_viewset("3x9")
    views = _views(viewset("3x9"))
    job = SampleJob(0, 12, 2, "class002_seed00012")
    with OutputWriter(str(tmp_path), choice, near=0.6, far=5.0, fov=45.0) as writer:
        writer.submit(job, views)
    grid_wh = (9 * (S + 2) + 2, 3 * (S + 2) + 2)  # make_grid with padding 2
    for sub, name in [("grids", "class002_seed00012.png"), ("grids", "class002_seed00012_depth.png"),
                      ("conds", "class002_seed00012.png"), ("conds", "class002_seed00012_depth.png")]:
        assert _size(tmp_path / sub / name) == grid_wh
    assert os.listdir(tmp_path / "results") == []  # the fusion protocol fills it (render.py --traj random)
    # the grid cell of row 1, column 4 is view 0 (yaw 0, pitch 0); the cond grid leaves it blank
    with Image.open(tmp_path / "grids" / "class002_seed00012.png") as im:
        cell = np.asarray(im)[1 * (S + 2) + 2:1 * (S + 2) + 2 + S, 4 * (S + 2) + 2:4 * (S + 2) + 2 + S]
    assert np.array_equal(cell, np.round(views[0].rgb.numpy() * 255).astype(np.uint8))
    with Image.open(tmp_path / "conds" / "class002_seed00012.png") as im:
        blank = np.asarray(im)[1 * (S + 2) + 2:1 * (S + 2) + 2 + S, 4 * (S + 2) + 2:4 * (S + 2) + 2 + S]
    assert (blank == 255).all()
    scene = load_scene(tmp_path / "scenes" / "class002_seed00012.npz")
    assert len(scene) == 27
    np.testing.assert_allclose(scene[5]["depth"], linearize_depth(views[5].z.numpy(), 0.6, 5.0), rtol=1e-6)
    np.testing.assert_allclose(scene[5]["modelview"], views[5].modelview)
    assert scene[5]["rgb"].shape == (S, S, 3) and scene[0]["fov"] == 45.0
    # scene colours truncate as the reference's save_scene: uint8(clip(x * 255, 0, 255))
    expected = np.clip(views[5].rgb.numpy() * 255, 0, 255).astype(np.uint8)
    assert np.array_equal(scene[5]["rgb"], expected)


@pytest.mark.parametrize("name,view_index", [("uncond", 0), ("random", 1)])
def test_single_result_per_sample(tmp_path, name, view_index):
    choice = parse_viewset(name)
    views = _views(viewset(name, generator=np.random.default_rng(0)))
    with OutputWriter(str(tmp_path), choice, 0.6, 5.0, 45.0) as writer:
        writer.submit(SampleJob(0, 3, None, "00000"), views)
    assert os.listdir(tmp_path / "results") == ["00000.png"]
    with Image.open(tmp_path / "results" / "00000.png") as im:
        # truncated as the reference: (np.clip(x, 0, 1) * 255).astype(np.uint8), not rounded
        expected = (np.clip(views[view_index].rgb.numpy(), 0, 1) * 255).astype(np.uint8)
        assert np.array_equal(np.asarray(im), expected)
        assert not np.array_equal(expected, np.round(views[view_index].rgb.numpy() * 255).astype(np.uint8))
    assert len(os.listdir(tmp_path / "conds")) == (0 if name == "uncond" else 2)


def test_queued_files_are_written_when_the_run_is_interrupted(tmp_path):
    choice = parse_viewset("3x9")
    with pytest.raises(KeyboardInterrupt):
        with OutputWriter(str(tmp_path), choice, 0.6, 5.0, 45.0, max_workers=1) as writer:
            for i in range(3):
                writer.submit(SampleJob(i, i, None, f"{i:05d}"), _views(viewset("3x9"), i))
            raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path / "scenes")) == ["00000.npz", "00001.npz", "00002.npz"]
    assert not [f for sub in ("grids", "scenes") for f in os.listdir(tmp_path / sub) if f.endswith(".tmp")]


def test_results_hold_only_what_the_fid_protocol_scores():
    from ivid.sampling.outputs import result_view

    assert result_view("uncond", 1) == 0
    assert result_view("random", 2) == 1
    for name, count in (("3x9", 27), ("360", 20), ("360x3", 60), ("file", 5)):
        assert result_view(name, count) is None


def test_fractional_levels_truncate_in_results_and_scenes_but_round_in_grids(tmp_path):
    """x = (k + 0.7) / 255 is level k in results/ and scenes (reference), k + 1 in the people grid."""
    choice = parse_viewset("uncond")
    levels = np.arange(S * S * 3).reshape(S, S, 3) % 200
    rgb = torch.from_numpy(((levels + 0.7) / 255).astype(np.float32))
    views = [View(rgb=rgb, z=torch.full((S, S), 0.5), modelview=np.eye(4), cond=None)]
    with OutputWriter(str(tmp_path), choice, 0.6, 5.0, 45.0) as writer:
        writer.submit(SampleJob(0, 0, None, "00000"), views)
    with Image.open(tmp_path / "results" / "00000.png") as im:
        assert np.array_equal(np.asarray(im), levels)
    assert np.array_equal(load_scene(tmp_path / "scenes" / "00000.npz")[0]["rgb"], levels)
    with Image.open(tmp_path / "grids" / "00000.png") as im:
        assert np.array_equal(np.asarray(im)[2:2 + S, 2:2 + S], levels + 1)


def test_scene_files_keep_each_views_condition(tmp_path):
    views = _views(viewset("3x9")[:3], seed=1)
    with OutputWriter(str(tmp_path), parse_viewset("3x9"), near=0.6, far=5.0, fov=45.0) as writer:
        writer.submit(SampleJob(0, 1, 0, "s"), views)
    scene = load_scene(tmp_path / "scenes" / "s.npz")
    assert not scene[0]["cond"]["mask"].any() and not scene[0]["cond"]["mask_rgb"].any()  # view 0: no condition
    for k in (1, 2):
        cond, mask = scene[k]["cond"], views[k].cond["mask"].numpy()[..., 0] > 0.5
        np.testing.assert_array_equal(cond["mask"], mask)
        np.testing.assert_array_equal(cond["mask_rgb"], views[k].cond["mask_rgb"].numpy()[..., 0] > 0.5)
        np.testing.assert_array_equal(cond["rgb"], np.round(views[k].cond["color"].numpy() * 255).astype(np.uint8))
        want = np.where(mask, linearize_depth(views[k].cond["depth"].numpy()[..., 0], 0.6, 5.0), 0.0)
        np.testing.assert_allclose(cond["depth"], want, rtol=1e-6)
