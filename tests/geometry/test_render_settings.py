"""RenderSettings: per-device defaults, and no budget or shortcut changes a rendered bit."""

import numpy as np
import pytest
import torch

from ivid.geometry import depth_to_mesh
from ivid.geometry.renderer import (ClipPlanes, RenderSettings, aggregation_render, mesh_arrays, projection,
                                    settings_for, simple_render)
from ivid.geometry.renderer.settings import ACCELERATOR_SETTINGS, CPU_SETTINGS

SIZE = 96

#: everything tiny: many chunks, blocks and sub-blocks, and no host shortcuts
TINY = RenderSettings(fragment_budget=2048, dense_budget=512, simple_pixel_budget=1, aggregation_pixel_budget=1,
                      fusion_pixel_budget=1, shade_block_pixels=700, resolve_block_pixels=50, host_checks=False,
                      stack_channels=True)


def test_settings_for_picks_by_device_type():
    assert settings_for("cpu") is CPU_SETTINGS and settings_for(torch.device("cpu")) is CPU_SETTINGS
    assert settings_for("cuda") is ACCELERATOR_SETTINGS and settings_for("mps") is ACCELERATOR_SETTINGS
    assert CPU_SETTINGS.replace(fragment_budget=7).fragment_budget == 7 and CPU_SETTINGS.fragment_budget == 1 << 19


@pytest.fixture(scope="module")
def room(fixtures_dir):
    fix = np.load(fixtures_dir / "render" / "aggregate_room_first4.npz", allow_pickle=False)
    def meshes(padding):
        return [mesh_arrays(depth_to_mesh(fix["views_depth_linear"][k], padding=padding, fov=45,
                                          modelview=fix["views_modelview"][k], atol=0.03, rtol=0.03, erode_rgb=3,
                                          cal_normal=True), torch.device("cpu")) for k in range(3)]
    colors = torch.from_numpy(fix["views_rgb_u8"][:3] / np.float32(255))
    views = torch.from_numpy(fix["views_modelview"][[1, 3]])
    return meshes("frustum"), meshes(None), colors, views


@pytest.mark.parametrize("settings", [ACCELERATOR_SETTINGS, TINY], ids=["accelerator", "tiny"])
def test_renders_do_not_depend_on_settings(room, settings):
    """The CPU defaults, the accelerator defaults (run here on the CPU) and tiny budgets give identical renders."""
    meshes, plain, colors, views = room
    planes = ClipPlanes(0.01, 200.0)
    matrices = projection(45, planes, "cpu") @ views
    targets = [meshes[:2], meshes[1:3]]
    textures = [colors[:2], colors[1:3]]
    reference = aggregation_render(targets, textures, matrices, SIZE, planes, CPU_SETTINGS)
    other = aggregation_render(targets, textures, matrices, SIZE, planes, settings)
    for key in reference:
        assert torch.equal(reference[key], other[key]), key
    assert reference["mask_depth"].float().mean() > 0.5
    frames = projection(45, planes, "cpu") @ views[[0, 1, 0]]
    reference = simple_render(plain, colors, frames, SIZE, planes, CPU_SETTINGS)
    other = simple_render(plain, colors, frames, SIZE, planes, settings)
    for key in reference:
        assert torch.equal(reference[key], other[key]), key
    assert reference["alpha"].mean() > 0.3
