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
