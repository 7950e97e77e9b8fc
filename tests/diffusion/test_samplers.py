"""DDPM / DDIM samplers: visited timesteps, determinism, x0 clipping (off by default, as the reference),
the reference's update formulas, and the DDIM guidance options."""

import json

import numpy as np
import pytest
import torch

from ivid.diffusion import ClassifierFreeGuidance, DdimSampler, DdpmSampler, GaussianDiffusion, InpaintCFG
from ivid.diffusion.guidance import constrain_depth, replace_depth, replace_rgb
from ivid.models import AdmUnet2d


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("steps", ["10", "30", "7", "1"])
def test_ddim_calls_model_at_fixture_indices(fixtures_dir, stubs, steps):
    ref = json.loads((fixtures_dir / "diffusion" / "ddim_timesteps.json").read_text())
    backbone = stubs.StubBackbone(image_size=2)
    DdimSampler(GaussianDiffusion(backbone)).sample(1, steps=int(steps), generator=_gen(0))
    assert [int(c["t"][0]) for c in backbone.calls] == ref["model_timestep_index"][steps]


def test_ddpm_calls_model_at_every_index(fixtures_dir, stubs):
    ref = json.loads((fixtures_dir / "diffusion" / "ddim_timesteps.json").read_text())
    backbone = stubs.StubBackbone(image_size=2)
    DdpmSampler(GaussianDiffusion(backbone)).sample(1, generator=_gen(0))
    assert [int(c["t"][0]) for c in backbone.calls] == ref["ddpm_model_t"]
    with pytest.raises(ValueError, match="DdimSampler"):
        DdpmSampler(GaussianDiffusion(backbone)).sample(1, steps=50)


@pytest.mark.parametrize("kind", ["ddim", "ddim_eta", "ddpm"])
def test_fixed_generator_is_deterministic(stubs, kind):
    fw = ClassifierFreeGuidance(stubs.TinyConvBackbone(), timesteps=50)
    sampler = DdpmSampler(fw) if kind == "ddpm" else DdimSampler(fw)
    kwargs = dict(steps=None if kind == "ddpm" else 10, eta=1.0 if kind == "ddim_eta" else 0.0,
                  classes=torch.tensor([1, 2]), strength=2.0)
    a = sampler.sample(2, generator=_gen(7), **kwargs).samples
    b = sampler.sample(2, generator=_gen(7), **kwargs).samples
    c = sampler.sample(2, generator=_gen(8), **kwargs).samples
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.shape == (2, 4, 8, 8) and a.dtype == torch.float32


def test_given_noise_is_used(stubs):
    sampler = DdimSampler(GaussianDiffusion(stubs.TinyConvBackbone()))
    noise = torch.randn(2, 4, 8, 8)
    a = sampler.sample(2, noise=noise, steps=5, generator=_gen(0))
    b = sampler.sample(2, noise=noise, steps=5, generator=_gen(1))
    assert torch.equal(a.noise, noise) and torch.equal(a.samples, b.samples)  # eta=0: no other randomness
    with pytest.raises(ValueError, match="num"):
        sampler.sample(3, noise=noise, steps=5)


@pytest.mark.parametrize("sampler_cls", [DdimSampler, DdpmSampler])
@pytest.mark.parametrize("clip", [None, False, True])
def test_predicted_x0_is_clipped_only_when_asked(stubs, sampler_cls, clip):
    """The reference's samplers default to clip_denoised=False: x0 outside [-1, 1] comes out as it is."""
    target = torch.linspace(-1.5, 1.5, 2 * 4 * 4 * 4).reshape(2, 4, 4, 4)
    fw = GaussianDiffusion(None, timesteps=50)
    fw.backbone = stubs.KnownX0Backbone(target, fw.alphas_cumprod)
    kwargs = {} if clip is None else {"clip_denoised": clip}
    out = sampler_cls(fw).sample(2, steps=None if sampler_cls is DdpmSampler else 5, generator=_gen(0),
                                 **kwargs).samples
    torch.testing.assert_close(out, target.clamp(-1, 1) if clip else target, atol=1e-4, rtol=0)


def _reference_tables(fw):
    """The reference samplers' float64 tables, written out here from their definitions."""
    betas = np.asarray(fw.betas, np.float64)
    abar = np.cumprod(1.0 - betas)
    abar_prev = np.append(1.0, abar[:-1])
    post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
    return {"abar": abar, "abar_prev": abar_prev, "recip": np.sqrt(1.0 / abar), "recipm1": np.sqrt(1.0 / abar - 1),
            "log_var": np.log(np.append(post_var[1], post_var[1:])),
            "coef1": betas * np.sqrt(abar_prev) / (1.0 - abar),
            "coef2": (1.0 - abar_prev) * np.sqrt(1.0 - betas) / (1.0 - abar)}


def test_ddim_without_clipping_follows_the_reference_formula(stubs):
    """DDIM (eta 0) on a model whose x0 leaves [-1, 1]: every step as the reference computes it."""
    fw = ClassifierFreeGuidance(stubs.TinyConvBackbone(), timesteps=100)
    x_T = torch.randn(2, 4, 8, 8, generator=_gen(4)) * 3  # large inputs: x0 predictions well outside [-1, 1]
    out = DdimSampler(fw).sample(2, noise=x_T, steps=10, classes=torch.tensor([1, 2]), strength=2.0).samples
    tab, x = _reference_tables(fw), x_T.double()
    outside = False
    for i in reversed(range(10)):
        t, t_prev = 10 * (i + 1), 10 * i
        eps = fw.model_inference(x.float(), torch.full((2,), t - 1), torch.tensor([1, 2]), 2.0).double()
        x_0 = tab["recip"][t - 1] * x - tab["recipm1"][t - 1] * eps
        outside |= bool(x_0.abs().max() > 1)
        eps = (tab["recip"][t - 1] * x - x_0) / tab["recipm1"][t - 1]
        x = np.sqrt(tab["abar_prev"][t_prev]) * x_0 + np.sqrt(1 - tab["abar_prev"][t_prev]) * eps
    assert outside  # the case clamping would change
    torch.testing.assert_close(out.double(), x, atol=1e-4, rtol=1e-3)  # ours in float32, this loop in float64


def test_ddpm_without_clipping_follows_the_reference_formula(stubs):
    """Ancestral DDPM: posterior mean of the unclamped x0 plus exp(0.5 log_var) noise (none at t = 0)."""
    fw = GaussianDiffusion(stubs.TinyConvBackbone(num_classes=None), timesteps=30)
    x_T = torch.randn(1, 4, 8, 8, generator=_gen(5)) * 3
    out = DdpmSampler(fw).sample(1, noise=x_T, generator=_gen(6)).samples
    tab, x, g = _reference_tables(fw), x_T.double(), _gen(6)
    for t in reversed(range(30)):
        eps = fw.model_inference(x.float(), torch.full((1,), t)).double()
        x_0 = tab["recip"][t] * x - tab["recipm1"][t] * eps
        mean = tab["coef1"][t] * x_0 + tab["coef2"][t] * x
        x = mean if t == 0 else mean + np.exp(0.5 * tab["log_var"][t]) * torch.randn(x.shape, generator=g).double()
    assert float(out.abs().max()) > 1  # unclamped
    torch.testing.assert_close(out.double(), x, atol=1e-4, rtol=1e-4)


def _guidance_case(n=1, size=4):
    g = _gen(3)
    target = torch.rand(n, 4, size, size, generator=g) * 1.6 - 0.8
    rgb_cond = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    depth_cond = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    depth_convex = torch.full((n, 1, size, size), 0.5)
    mask_rgb = (torch.rand(n, 1, size, size, generator=g) > 0.5).float()
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.5).float()
    options = dict(replace_rgb=(0.1, rgb_cond, mask_rgb), replace_depth=(0.2, depth_cond, mask),
                   constrain_depth=(0.5, depth_convex))
    return target, options


def test_ddim_guidance_every_step_but_rgb_not_on_last(stubs):
    target, options = _guidance_case()
    fw = GaussianDiffusion(None)
    backbone = stubs.KnownX0Backbone(target, fw.alphas_cumprod)
    fw.backbone = backbone
    x_T = torch.randn(1, 4, 4, 4, generator=_gen(5))
    out = DdimSampler(fw).sample(1, noise=x_T, steps=2, **options).samples

    def guided(x_0, last):
        x_0 = x_0 if last else replace_rgb(x_0, *options["replace_rgb"])
        x_0 = replace_depth(x_0, *options["replace_depth"])
        return constrain_depth(x_0, *options["constrain_depth"], options["replace_depth"][2])

    # first step (t=1000 -> 500): every option applies; check the x_500 the model saw next, in float64
    abar, abar_prev = fw.alphas_cumprod[999], fw.alphas_cumprod[499]
    x_0 = guided(target.double(), last=False)
    eps = (np.sqrt(1 / abar) * x_T.double() - x_0) / np.sqrt(1 / abar - 1)
    x_500 = x_0 * np.sqrt(abar_prev) + np.sqrt(1 - abar_prev) * eps
    torch.testing.assert_close(backbone.calls[1]["x"].double(), x_500, atol=1e-4, rtol=0)
    # last step (t_prev = 0): the output is the guided x0 without the rgb replacement
    torch.testing.assert_close(out.double(), guided(target.double(), last=True), atol=1e-4, rtol=0)
    assert not torch.allclose(out[:, :3], guided(target, last=False)[:, :3], atol=1e-3)


def test_constrain_depth_needs_replace_depth(stubs):
    target, options = _guidance_case()
    fw = GaussianDiffusion(stubs.StubBackbone(image_size=4))
    with pytest.raises(ValueError, match="replace_depth"):
        DdimSampler(fw).sample(1, steps=2, constrain_depth=options["constrain_depth"])


def test_verbose_shows_progress(stubs, capsys):
    DdimSampler(GaussianDiffusion(stubs.StubBackbone(image_size=2))).sample(1, steps=3, verbose=True)
    assert "DDIM" in capsys.readouterr().err


def test_inpaint_ddim_with_tiny_unet_end_to_end():
    """A real (tiny) InpaintCFG UNet: guided, conditioned DDIM sampling is deterministic and in range."""
    torch.manual_seed(0)
    backbone = AdmUnet2d(image_size=16, in_channels=10, model_channels=8, out_channels=4, num_res_blocks=1,
                         attention_resolutions=[8], channel_mult=[1, 2], num_classes=3, has_null_class=True,
                         num_groups=4, num_heads=None, num_head_channels=8).eval()
    for p in backbone.parameters():  # zero-initialised output layers would make eps trivial
        torch.nn.init.normal_(p, std=0.2)
    fw = InpaintCFG(backbone)
    target, options = _guidance_case(n=2, size=16)
    y = torch.cat([options["replace_rgb"][1], options["replace_depth"][1]], dim=1)
    cond = dict(y=y, mask=options["replace_depth"][2], mask_rgb=options["replace_rgb"][2], strength=3.0, **options)
    run = [DdimSampler(fw).sample(2, classes=torch.tensor([0, 2]), steps=4, eta=0.5, generator=_gen(s),
                                  clip_denoised=True, **cond).samples for s in (0, 0, 1)]
    assert torch.equal(run[0], run[1]) and not torch.equal(run[0], run[2])
    assert run[0].shape == (2, 4, 16, 16) and run[0].abs().max() <= 1  # clamped x0, eta 0.5: bounded


def test_per_sample_generators_make_samples_batch_independent(stubs):
    """With one generator per sample, a sample does not depend on what shares its batch."""
    fw = InpaintCFG(stubs.TinyConvBackbone(in_channels=10), timesteps=50)
    g = _gen(11)
    y, mask = torch.rand(2, 4, 8, 8, generator=g) * 2 - 1, (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()

    def run(seeds, rows):
        return DdimSampler(fw).sample(len(seeds), steps=5, eta=1.0, generator=[_gen(s) for s in seeds],
                                      y=y[rows], mask=mask[rows], mask_rgb=mask[rows]).samples

    pair = run([3, 4], [0, 1])
    torch.testing.assert_close(pair[1:], run([4], [1]), atol=1e-5, rtol=1e-4)  # unclamped: large values
    torch.testing.assert_close(pair[:1], run([3], [0]), atol=1e-5, rtol=1e-4)


def test_global_rng_stream_is_the_references(stubs):
    """generator=None: the draws come from torch's global RNG in the reference's order (x_T; per DDIM step the
    InpaintCFG fill noise, colour then depth, then one randn of x_t's shape even with eta 0 or on the last step),
    so the same seed gives the reference's samples. The loop below is the reference's DDIM, written out."""
    fw = InpaintCFG(stubs.TinyConvBackbone(in_channels=10, num_classes=None), timesteps=100)
    target, options = _guidance_case(n=2, size=8)
    y = torch.cat([options["replace_rgb"][1], options["replace_depth"][1]], dim=1)
    mask, mask_rgb = options["replace_depth"][2], options["replace_rgb"][2]
    for eta in (0.0, 0.5):
        torch.manual_seed(7)
        ours = DdimSampler(fw).sample(2, steps=5, eta=eta, y=y, mask=mask, mask_rgb=mask_rgb, **options).samples
        tab = _reference_tables(fw)
        torch.manual_seed(7)
        x = torch.randn(2, 4, 8, 8)
        for i in reversed(range(5)):
            t, t_prev = 20 * (i + 1), 20 * i
            n_rgb, n_depth = torch.randn_like(y[:, :3]), torch.randn_like(y[:, 3:])
            x_in = torch.cat([x, mask_rgb, y[:, :3] * mask_rgb + n_rgb * (1 - mask_rgb),
                              y[:, 3:] * mask + n_depth * (1 - mask), mask], dim=1)
            eps = fw.backbone(x_in, torch.full((2,), t - 1), None)
            x_0 = float(tab["recip"][t - 1]) * x - float(tab["recipm1"][t - 1]) * eps
            x_0 = replace_depth(x_0 if t_prev == 0 else replace_rgb(x_0, *options["replace_rgb"]),
                                *options["replace_depth"])
            x_0 = constrain_depth(x_0, *options["constrain_depth"], mask)
            eps = (float(tab["recip"][t - 1]) * x - x_0) / float(tab["recipm1"][t - 1])
            abar, abar_prev = float(tab["abar"][t - 1]), float(tab["abar_prev"][t_prev])
            sigma = eta * np.sqrt((1 - abar_prev) / (1 - abar)) * np.sqrt(1 - abar / abar_prev)
            noise = torch.randn_like(x)
            x = np.sqrt(abar_prev) * x_0 + np.sqrt(1 - abar_prev - sigma ** 2) * eps + (t_prev != 0) * sigma * noise
        torch.testing.assert_close(ours, x, atol=1e-4, rtol=1e-4)


def test_ddpm_draws_on_every_step_as_the_reference(stubs):
    """Two DDPM runs after one global seed: the second starts where the reference's would (t = 0 draws too)."""
    fw = GaussianDiffusion(stubs.TinyConvBackbone(num_classes=None), timesteps=50)
    torch.manual_seed(3)
    ours = [DdpmSampler(fw).sample(1).samples for _ in range(2)]
    torch.manual_seed(3)
    for _ in range(50 + 1):  # the first run: x_T and one randn per step
        torch.randn(1, 4, 8, 8)
    x_T = torch.randn(1, 4, 8, 8)
    torch.manual_seed(3)
    first = DdpmSampler(fw).sample(1).samples
    torch.testing.assert_close(first, ours[0])
    second_x_T = DdpmSampler(fw).sample(1).noise
    torch.testing.assert_close(second_x_T, x_T)
