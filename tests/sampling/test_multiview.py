"""ivid.sampling.multiview: the sequential sampler on tiny random models (CPU)."""

import numpy as np
import pytest
import torch

from ivid.geometry import viewset
from ivid.sampling.multiview import MultiviewOptions, Timings, loop_generator, sample_multiview
from ivid.utils.seeds import sample_generators

FAST = MultiviewOptions(steps_uncond=3, steps_cond=2)


def _stack(views, attr):
    return torch.stack([getattr(v, attr) for v in views])


def test_first_view_uses_the_seed_noise(tiny_frameworks):
    g_u, _ = tiny_frameworks
    views = sample_multiview(g_u, None, viewset("uncond"), sample_generators([4, 9]), torch.tensor([1, -1]), FAST)
    assert len(views) == 2 and all(len(v) == 1 for v in views)
    rgb, z = views[0][0].rgb, views[0][0].z
    assert rgb.shape == (32, 32, 3) and z.shape == (32, 32) and rgb.dtype == torch.float32
    assert 0 <= float(rgb.min()) and float(rgb.max()) <= 1 and 0 <= float(z.min()) and float(z.max()) <= 1
    assert not torch.equal(views[0][0].rgb, views[1][0].rgb)
    np.testing.assert_array_equal(views[0][0].modelview, viewset("uncond")[0])
    # DDIM with eta = 0 on G_u draws nothing inside its loop: a sample depends on its own seed only
    alone = sample_multiview(g_u, None, viewset("uncond"), sample_generators([9]), torch.tensor([-1]), FAST)
    torch.testing.assert_close(alone[0][0].rgb, views[1][0].rgb, atol=1e-3, rtol=0)  # batch-size float noise only


def test_ddpm_for_1000_steps_is_deterministic(tiny_frameworks, monkeypatch):
    g_u, _ = tiny_frameworks
    import ivid.diffusion.samplers as samplers

    calls = []
    monkeypatch.setattr(samplers.DdpmSampler, "timesteps", lambda self: (calls.append(1), [999, 500, 0])[1])
    options = MultiviewOptions(steps_uncond=1000)
    a = sample_multiview(g_u, None, viewset("uncond"), sample_generators([0, 1]), torch.tensor([0, 1]), options)
    b = sample_multiview(g_u, None, viewset("uncond"), sample_generators([0, 1]), torch.tensor([0, 1]), options)
    assert len(calls) == 2
    assert all(torch.equal(x[0].rgb, y[0].rgb) for x, y in zip(a, b))


def test_loop_generator():
    single = sample_generators([5])
    assert loop_generator(single) is single[0]
    first = loop_generator(sample_generators([1, 2]))
    again = loop_generator(sample_generators([1, 2]))
    other = loop_generator(sample_generators([2, 1]))
    if isinstance(first, list):
        assert len(first) == 2
    else:
        assert torch.equal(torch.randn(4, generator=first), torch.randn(4, generator=again))
        assert not torch.equal(torch.randn(4, generator=loop_generator(sample_generators([1, 2]))),
                               torch.randn(4, generator=other))


def test_timings_add_up(tiny_frameworks):
    g_u, _ = tiny_frameworks
    timings = Timings(device=torch.device("cpu"))
    sample_multiview(g_u, None, viewset("uncond"), sample_generators([0]), None, FAST, timings=timings)
    assert timings.seconds["model_uncond"] > 0 and set(timings.seconds) == {"model_uncond"}


def test_batch_conditions_equal_per_sample_conditions():
    from ivid.geometry import aggregate_conditions

    from ivid.sampling.multiview import batch_conditions, view_mesh

    cams = viewset("3x9")
    g = torch.Generator().manual_seed(0)
    meshes, colors = [[], []], [[], []]
    for b in range(2):
        for k in range(2):
            rgbd = (torch.rand(4, 16, 16, generator=g) * 0.2
                    + torch.tensor([0.2, 0.5, 0.8, 0.3 + 0.2 * b])[:, None, None])
            rgbd[3] = 0.3 + 0.2 * b  # smooth depth (a wall), random colours
            mesh, color = view_mesh(rgbd * 2 - 1, cams[k], FAST)
            meshes[b].append(mesh)
            colors[b].append(color)
    targets = [cams[2], cams[3]]
    batched = batch_conditions(meshes, colors, targets, FAST, torch.device("cpu"))
    assert batched["color"].shape == (2, 3, 16, 16) and batched["mask"].shape == (2, 1, 16, 16)
    for b in range(2):
        single = aggregate_conditions(meshes[b], colors[b], targets[b], fov=45, near=0.6, far=5, atol=0.03,
                                      rtol=0.03, erode_rgb=3, ssaa=3)
        for key in ("color", "depth", "mask", "mask_rgb", "depth_convex"):
            torch.testing.assert_close(batched[key][b], torch.as_tensor(single[key]).permute(2, 0, 1))
    assert float(batched["mask"].mean()) > 0.3  # the previous views do cover the new ones


def test_mesh_colours_are_not_clamped_before_blending():
    """As the reference's sample.py: a view's texture is its RGB * 0.5 + 0.5 as sampled, out-of-range values
    included (they blend as they are); the depth code is clamped by linearize_depth only."""
    from ivid.sampling.multiview import view_mesh

    rgbd = torch.zeros(4, 8, 8)
    rgbd[0] = 1.4   # red above 1 after mapping: 1.2
    rgbd[1] = -1.3  # green below 0: -0.15
    rgbd[2] = torch.linspace(-1, 1, 64).reshape(8, 8)
    _, color = view_mesh(rgbd, viewset("uncond")[0], MultiviewOptions())
    torch.testing.assert_close(color, (rgbd[:3] * 0.5 + 0.5).permute(1, 2, 0))
    assert float(color[..., 0].min()) == pytest.approx(1.2) and float(color[..., 1].max()) == pytest.approx(-0.15)


def test_out_of_range_colours_change_the_blended_condition():
    """Blending unclamped colours (reference) differs from blending clamped ones wherever two views overlap."""
    from ivid.sampling.multiview import batch_conditions, view_mesh

    options = MultiviewOptions(atol=1.0, rtol=1.0, erode_rgb=0)
    cams = viewset("3x9")
    flat = torch.zeros(4, 16, 16)
    flat[3] = 0.0  # one plane
    bright, dark = flat.clone(), flat.clone()
    bright[:3] = 1.5   # colour 1.25
    dark[:3] = -0.6    # colour 0.2
    meshes, colors = zip(*(view_mesh(v, cams[k], options) for k, v in enumerate((bright, dark))))
    cond = batch_conditions([list(meshes)], [list(colors)], [cams[2]], options, torch.device("cpu"))
    clamped = [c.clamp(0, 1) for c in colors]
    cond_clamped = batch_conditions([list(meshes)], [clamped], [cams[2]], options, torch.device("cpu"))
    both = cond["mask_rgb"][0, 0] > 0
    assert bool(both.any())
    assert float((cond["color"] - cond_clamped["color"])[0][:, both].abs().max()) > 0.01
