"""DPM-Solver++(2M): the update against an independent NumPy reference, exact flows, grids, guidance, noise."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ivid.diffusion import (SAMPLERS, ClassifierFreeGuidance, DdimSampler, DdpmSampler, Dpmpp2mSampler,
                            GaussianDiffusion, InpaintCFG)
from ivid.diffusion.dpm_solver import half_log_snr, solver_timesteps
from ivid.diffusion.guidance import constrain_depth, replace_depth, replace_rgb
from ivid.diffusion.noise import randn
from ivid.diffusion.schedules import get_betas


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _abar(timesteps=1000):
    return np.cumprod(1.0 - get_betas("linear", timesteps))


# --- toy models ---------------------------------------------------------------------------------

def _toy_eps_np(x, t, label):
    """A nonlinear eps model in float64 NumPy: x (N, C, H, W), t int, label (N,) ints (-1 = null)."""
    bias = 0.4 * math.cos(t / 300.0) + 0.15 * (label.astype(np.float64) + 1.0) * (label >= 0)
    return 0.9 * np.tanh(0.7 * np.roll(x, 1, axis=1) - 0.3 * x + bias.reshape(-1, 1, 1, 1)) + 0.2 * x


class ToyEps(nn.Module):
    """The same model as :func:`_toy_eps_np`, computed in float64 torch (float32 in and out)."""

    def __init__(self, image_size=4, in_channels=4, num_classes=5):
        super().__init__()
        self.image_size, self.in_channels, self.out_channels = image_size, in_channels, 4
        self.num_classes, self.has_null_class = num_classes, True
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, classes=None):
        """eps of the first 4 channels (x_t); extra condition channels are ignored."""
        labels = torch.full((x.shape[0],), -1) if classes is None else classes.cpu()
        out = _toy_eps_np(x[:, :4].detach().double().cpu().numpy(), int(t[0]), labels.numpy())
        return torch.from_numpy(out).to(x.device, torch.float32)


class GaussianDataEps(nn.Module):
    """The exact eps of Gaussian data x_0 ~ N(mu, s^2 I) (float64 inside); records the inputs.

    The posterior mean is ``D(x_t) = mu + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha mu)`` and
    ``eps = (x_t - alpha D) / sigma``. Along the probability-flow ODE the standardised
    ``(x_t - alpha mu) / sqrt(alpha^2 s^2 + sigma^2)`` stays constant, which gives the exact solution.
    """

    def __init__(self, mu, s, alphas_cumprod):
        super().__init__()
        self.mu, self.s = mu.double(), float(s)
        self.abar = torch.from_numpy(np.asarray(alphas_cumprod))
        self.image_size, self.in_channels, self.out_channels = mu.shape[-1], mu.shape[1], mu.shape[1]
        self.num_classes = None
        self.anchor = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x, t, classes=None):
        self.calls.append((x.clone(), int(t[0])))
        abar = self.abar[t].reshape(-1, 1, 1, 1)
        alpha, sigma, x = abar.sqrt(), (1 - abar).sqrt(), x.double()
        d = self.mu + alpha * self.s ** 2 / (abar * self.s ** 2 + sigma ** 2) * (x - alpha * self.mu)
        return ((x - alpha * d) / sigma).float()

    def exact(self, x_T, index):
        """The exact flow from x_T (at index T-1) to model index ``index`` (None = the clean sample)."""
        a_T, s_T = self.abar[-1].sqrt(), (1 - self.abar[-1]).sqrt()
        z = (x_T.double() - a_T * self.mu) / torch.sqrt(a_T ** 2 * self.s ** 2 + s_T ** 2)
        if index is None:
            return self.mu + self.s * z
        a, s = self.abar[index].sqrt(), (1 - self.abar[index]).sqrt()
        return a * self.mu + torch.sqrt(a ** 2 * self.s ** 2 + s ** 2) * z


def _gaussian_case(n=4, size=8, seed=0):
    g = _gen(seed)
    mu = (torch.rand(1, 4, size, size, generator=g) - 0.5) * 0.6
    fw = GaussianDiffusion(None)
    fw.backbone = GaussianDataEps(mu, 0.2, fw.alphas_cumprod)  # x_0 predictions stay inside [-1, 1]
    return fw, torch.randn(n, 4, size, size, generator=g)


def _rms(a, b):
    return float(((a.double() - b.double()) ** 2).mean().sqrt())


# --- NumPy reference of the paper's update ---------------------------------------------------------

def reference_dpmpp_2m(x_T, eps_fn, alphas_cumprod, indices, guide=None, eta=0.0, noises=None):
    """DPM-Solver++(2M), Lu et al. 2022, Algorithm 2, in float64 NumPy.

    alpha = sqrt(abar), sigma = sqrt(1 - abar), lambda = log(alpha / sigma); data prediction
    x_theta = (x - sigma eps) / alpha. Step i (t_{i-1} -> t_i, h_i = lambda_i - lambda_{i-1}):
    first step D = x_theta(t_0); later D = (1 + 1/(2 r_i)) x_theta(t_{i-1}) - 1/(2 r_i) x_theta(t_{i-2}),
    r_i = h_{i-1} / h_i; x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (e^{-h_i} - 1) D.
    After the last evaluation the sample is its data prediction (the step into sigma = 0).
    ``guide(x0, is_last)`` edits each data prediction.
    With ``eta > 0`` the SDE step: the exact solution of the linear part of
    dx = [f x - (1 + eta^2) / 2 g^2 score] dt + eta g dw with the data prediction held at D, i.e.
    x_i = (sigma_i / sigma_{i-1}) e^{-eta h} x_{i-1} + alpha_i (1 - e^{-(1 + eta) h}) D
    + sigma_i sqrt(1 - e^{-2 eta h}) z_i, with ``noises[i]`` as z_i.
    """
    abar = np.asarray(alphas_cumprod, np.float64)
    alpha, sigma = np.sqrt(abar), np.sqrt(1 - abar)
    lam = np.log(alpha / sigma)
    x, prev = np.asarray(x_T, np.float64), None
    for i, t in enumerate(indices):
        x0 = (x - sigma[t] * eps_fn(x, t)) / alpha[t]
        last = i == len(indices) - 1
        if guide is not None:
            x0 = guide(x0, last)
        if last:
            return x0
        s = indices[i + 1]
        h = lam[s] - lam[t]
        if prev is None:
            d = x0
        else:
            r = prev[1] / h
            d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * prev[0]
        if eta == 0:
            x = sigma[s] / sigma[t] * x - alpha[s] * (np.exp(-h) - 1) * d
        else:
            x = sigma[s] / sigma[t] * np.exp(-eta * h) * x + alpha[s] * (1 - np.exp(-(1 + eta) * h)) * d \
                + sigma[s] * np.sqrt(1 - np.exp(-2 * eta * h)) * noises[i]
        prev = (x0, h)


@pytest.mark.parametrize("steps,grid", [(7, "logSNR"), (13, "time_uniform"), (20, "logSNR"), (2, "logSNR")])
def test_matches_numpy_reference_with_cfg(steps, grid):
    fw = ClassifierFreeGuidance(ToyEps(), timesteps=1000)
    sampler = Dpmpp2mSampler(fw, grid=grid)
    classes, strength = np.array([0, 3]), 2.0
    x_T = torch.randn(2, 4, 4, 4, generator=_gen(1))
    out = sampler.sample(2, noise=x_T, classes=torch.tensor(classes), steps=steps, strength=strength).samples

    def guided_eps(x, t):  # (1 + s) eps(x, t, c) - s eps(x, t, null)
        return (1 + strength) * _toy_eps_np(x, t, classes) - strength * _toy_eps_np(x, t, np.array([-1, -1]))

    ref = reference_dpmpp_2m(x_T.numpy(), guided_eps, fw.alphas_cumprod, sampler.timesteps(steps))
    assert out.dtype == torch.float32 and out.shape == (2, 4, 4, 4)
    # float32 state vs float64 reference; x_0 = x / alpha amplifies rounding by 1/alpha(T-1) ~ 160 early on
    np.testing.assert_allclose(out.numpy(), ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("eta,steps,grid", [(1.0, 9, "logSNR"), (0.4, 12, "time_uniform")])
def test_sde_matches_numpy_reference_with_cfg(eta, steps, grid):
    """eta > 0: the same update with the same noise draws (x_T, then one per step but the last)."""
    fw = ClassifierFreeGuidance(ToyEps(), timesteps=1000)
    sampler = Dpmpp2mSampler(fw, grid=grid)
    classes, strength, shape = np.array([1, 4]), 1.5, (2, 4, 4, 4)
    out = sampler.sample(2, classes=torch.tensor(classes), steps=steps, strength=strength, eta=eta,
                         generator=_gen(5)).samples
    g = _gen(5)
    x_T = randn(shape, g).numpy()
    noises = [randn(shape, g).numpy() for _ in range(steps - 1)]

    def guided_eps(x, t):
        return (1 + strength) * _toy_eps_np(x, t, classes) - strength * _toy_eps_np(x, t, np.array([-1, -1]))

    ref = reference_dpmpp_2m(x_T, guided_eps, fw.alphas_cumprod, sampler.timesteps(steps), eta=eta, noises=noises)
    np.testing.assert_allclose(out.numpy(), ref, atol=2e-4, rtol=1e-4)
    eta_zero = sampler.sample(2, classes=torch.tensor(classes), steps=steps, strength=strength,
                              generator=_gen(5)).samples
    assert _rms(out, eta_zero) > 0.05  # the noise does act


def test_sde_first_order_with_eta_one_is_ddim_with_eta_one():
    """eta 1, first order: the DDPM posterior step, i.e. DDIM with eta 1 (same grid, same noise draws)."""
    fw, _ = _gaussian_case()
    ddim = DdimSampler(fw).sample(4, steps=10, eta=1.0, generator=_gen(2)).samples
    first = Dpmpp2mSampler(fw, grid="time_uniform", order=1).sample(4, steps=10, eta=1.0, generator=_gen(2)).samples
    torch.testing.assert_close(first, ddim, atol=2e-5, rtol=0)


@pytest.mark.parametrize("eta", [0.3, 1.0])
def test_sde_keeps_the_forward_marginals_of_point_data(eta):
    """Data = one point x*: with its exact eps, every state the solver reaches is distributed as q(x_t | x*)
    (mean alpha_t x*, standard deviation sigma_t), at any step size; the sample is x* itself."""
    mu = torch.linspace(-0.8, 0.8, 4 * 4).reshape(1, 4, 2, 2)
    fw = GaussianDiffusion(None)
    fw.backbone = GaussianDataEps(mu, 0.0, fw.alphas_cumprod)
    sampler = Dpmpp2mSampler(fw)
    out = sampler.sample(2000, steps=6, eta=eta, generator=_gen(7)).samples
    torch.testing.assert_close(out, mu.expand_as(out), atol=1e-4, rtol=0)
    abar = np.asarray(fw.alphas_cumprod)
    for x, t in fw.backbone.calls[1:]:  # the states after each stochastic step
        z = (x.double() - math.sqrt(abar[t]) * mu) / math.sqrt(1 - abar[t])
        assert abs(float(z.mean())) < 0.03 and abs(float(z.std()) - 1) < 0.03, (t, float(z.mean()), float(z.std()))


def test_order_one_is_ddim():
    """order=1 on the time-uniform grid is DDIM (eta 0) step for step when steps divides T."""
    fw, x_T = _gaussian_case()
    ddim = DdimSampler(fw).sample(4, noise=x_T, steps=10).samples
    first = Dpmpp2mSampler(fw, grid="time_uniform", order=1).sample(4, noise=x_T, steps=10).samples
    second = Dpmpp2mSampler(fw, grid="time_uniform").sample(4, noise=x_T, steps=10).samples
    torch.testing.assert_close(first, ddim, atol=2e-5, rtol=0)
    assert _rms(second, ddim) > 1e-3  # the second-order correction does act


# --- grids -------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [1, 4, 10, 20, 25, 50, 100, 1000])
def test_time_uniform_grid_is_the_ddim_grid_for_divisors(steps):
    fw = GaussianDiffusion(None)
    ddim = [t - 1 for t, _ in DdimSampler(fw).timestep_pairs(steps)]
    assert solver_timesteps(fw.alphas_cumprod, steps, "time_uniform") == ddim


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 13, 15, 37, 200, 999, 1000])
@pytest.mark.parametrize("grid", ["logSNR", "time_uniform"])
def test_any_step_count_gives_a_strictly_decreasing_grid(steps, grid):
    grid_t = solver_timesteps(_abar(), steps, grid)
    assert len(grid_t) == steps and grid_t[0] == 999 and grid_t[-1] >= 0
    assert all(a > b for a, b in zip(grid_t, grid_t[1:]))
    if steps == 1000:
        assert grid_t == list(range(999, -1, -1))


@pytest.mark.parametrize("steps", [5, 10, 13])
def test_logsnr_grid_is_nearest_index_to_uniform_lambda(steps):
    """Without rounding collisions each point is the index whose lambda is nearest a uniform target."""
    abar = _abar()
    lam = 0.5 * np.log(abar / (1 - abar))
    targets = np.linspace(lam[999], lam[0], steps + 1)[:steps]  # the last point becomes sigma = 0
    # nearest in index space (lambda is monotone): the neighbours bracket the target
    for idx, target in zip(solver_timesteps(abar, steps, "logSNR"), targets):
        lo, hi = max(idx - 1, 0), min(idx + 1, 999)
        assert lam[hi] - 1e-12 <= target <= lam[lo] + 1e-12
    np.testing.assert_allclose(half_log_snr(abar), lam)


@pytest.mark.parametrize("bad", [0, 1001, 2.5, -3, True])
def test_bad_steps_and_options_are_one_line_errors(bad):
    sampler = Dpmpp2mSampler(GaussianDiffusion(ToyEps()))
    with pytest.raises(ValueError, match="steps"):
        sampler.sample(1, steps=bad)
    for bad_eta in (-0.1, 1.5, "1", True):
        with pytest.raises(ValueError, match="eta"):
            sampler.sample(1, steps=5, eta=bad_eta)
    with pytest.raises(ValueError, match="grid"):
        Dpmpp2mSampler(GaussianDiffusion(ToyEps()), grid="karras")


# --- perfect eps models ----------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [1, 2, 5, 7])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_single_point_data_is_reached_exactly(stubs, steps, eta):
    """With the exact eps of data = one point x*, every data prediction is x*, so the sample is x*."""
    target = torch.linspace(-0.9, 0.9, 2 * 4 * 4 * 4).reshape(2, 4, 4, 4)
    fw = GaussianDiffusion(None)
    fw.backbone = stubs.KnownX0Backbone(target, fw.alphas_cumprod)
    out = Dpmpp2mSampler(fw).sample(2, steps=steps, eta=eta, generator=_gen(0)).samples
    torch.testing.assert_close(out, target, atol=1e-4, rtol=0)


def test_gaussian_data_reaches_the_exact_flow_in_few_steps():
    fw, x_T = _gaussian_case()
    exact = fw.backbone.exact(x_T, None)
    solver = {s: _rms(Dpmpp2mSampler(fw).sample(4, noise=x_T, steps=s).samples, exact) for s in (10, 20)}
    ddim = {s: _rms(Dpmpp2mSampler(fw, grid="time_uniform", order=1).sample(4, noise=x_T, steps=s).samples, exact)
            for s in (10, 50)}
    scale = float(exact.std())
    assert solver[10] < 0.02 * scale and solver[20] < 0.02 * scale
    assert solver[10] < 0.1 * ddim[10] and solver[10] < 0.5 * ddim[50]


@pytest.mark.parametrize("grid", ["logSNR", "time_uniform"])
def test_second_order_convergence(grid):
    """Halving the step (nested grids) divides the error at a shared index by ~4; first order by ~2."""
    fw, x_T = _gaussian_case()
    backbone = fw.backbone

    def error_at(index, steps, order):
        backbone.calls = []
        Dpmpp2mSampler(fw, grid=grid, order=order).sample(4, noise=x_T, steps=steps)
        x = next(x for x, t in backbone.calls if t == index)
        return _rms(x, backbone.exact(x_T, index))

    index = 302 if grid == "logSNR" else 199  # on the 10-, 20- and 40-step grids
    for order, (low, high) in ((2, (3.0, 5.5)), (1, (1.6, 2.4))):
        errors = [error_at(index, s, order) for s in (10, 20, 40)]
        ratios = [errors[0] / errors[1], errors[1] / errors[2]]
        assert all(low < r < high for r in ratios), (order, errors)


# --- guidance ------------------------------------------------------------------------------------

def _guidance_case(n=1, size=4, weights=(0.1, 0.2, 0.5)):
    g = _gen(3)
    target = torch.rand(n, 4, size, size, generator=g) * 1.6 - 0.8
    rgb_cond = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    depth_cond = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    depth_convex = torch.full((n, 1, size, size), 0.5)
    mask_rgb = (torch.rand(n, 1, size, size, generator=g) > 0.5).float()
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.5).float()
    options = dict(replace_rgb=(weights[0], rgb_cond, mask_rgb), replace_depth=(weights[1], depth_cond, mask),
                   constrain_depth=(weights[2], depth_convex))
    return target, options


def _guided(x_0, options, last):
    x_0 = x_0 if last else replace_rgb(x_0, *options["replace_rgb"])
    x_0 = replace_depth(x_0, *options["replace_depth"])
    return constrain_depth(x_0, *options["constrain_depth"], options["replace_depth"][2])


def test_guidance_applied_to_every_data_prediction_but_rgb_not_on_last(stubs):
    """With a fixed model x_0 = x*, every guided prediction is g = guided(x*), the multistep
    extrapolation of equal predictions is g again, so the model sees x_{t_i} = alpha_i g +
    sigma_i (x_T - alpha_0 g) / sigma_0 at every evaluation, and the sample is guided(x*) without
    the rgb replacement."""
    target, options = _guidance_case()
    fw = GaussianDiffusion(None)
    backbone = stubs.KnownX0Backbone(target, fw.alphas_cumprod)
    fw.backbone = backbone
    sampler = Dpmpp2mSampler(fw)
    x_T = torch.randn(1, 4, 4, 4, generator=_gen(5))
    out = sampler.sample(1, noise=x_T, steps=6, **options).samples
    g = _guided(target.double(), options, last=False)
    abar = fw.alphas_cumprod
    indices = sampler.timesteps(6)
    assert [int(c["t"][0]) for c in backbone.calls] == indices
    a0, s0 = math.sqrt(abar[indices[0]]), math.sqrt(1 - abar[indices[0]])
    for call, t in zip(backbone.calls[1:], indices[1:]):
        expected = math.sqrt(abar[t]) * g + math.sqrt(1 - abar[t]) * (x_T.double() - a0 * g) / s0
        torch.testing.assert_close(call["x"].double(), expected, atol=2e-4, rtol=0)
    torch.testing.assert_close(out.double(), _guided(target.double(), options, last=True), atol=1e-4, rtol=0)
    assert not torch.allclose(out[:, :3], _guided(target, options, last=False)[:, :3], atol=1e-3)


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_replace_weight_one_gives_the_condition_exactly_inside_the_mask(steps):
    """A real (toy) conditional model: replace_depth 1 pins the depth inside the mask, at every step count."""
    fw = InpaintCFG(ToyEps(in_channels=10), timesteps=1000)
    _, options = _guidance_case(n=2, weights=(1.0, 1.0, 0.5))
    y = torch.cat([options["replace_rgb"][1], options["replace_depth"][1]], 1)
    mask, mask_rgb = options["replace_depth"][2], options["replace_rgb"][2]
    out = Dpmpp2mSampler(fw).sample(2, steps=steps, classes=torch.tensor([1, 2]), strength=3.0, generator=_gen(0),
                                    y=y, mask=mask, mask_rgb=mask_rgb, **options).samples
    inside = mask.expand_as(out[:, 3:]).bool()
    assert torch.equal(out[:, 3:][inside], y[:, 3:][inside])
    # outside the mask the depth is the model's (constrained: never in front of depth_convex's pull)
    assert not torch.equal(out[:, 3:][~inside], y[:, 3:][~inside])


def test_clip_denoised_clamps_each_prediction(stubs):
    target = torch.linspace(-1.5, 1.5, 2 * 4 * 4 * 4).reshape(2, 4, 4, 4)
    fw = GaussianDiffusion(None)
    fw.backbone = stubs.KnownX0Backbone(target, fw.alphas_cumprod)
    sampler = Dpmpp2mSampler(fw)
    torch.testing.assert_close(sampler.sample(2, steps=5).samples, target, atol=1e-4, rtol=0)  # default: no clip
    torch.testing.assert_close(sampler.sample(2, steps=5, clip_denoised=True).samples, target.clamp(-1, 1),
                               atol=1e-4, rtol=0)


def test_constrain_depth_needs_replace_depth(stubs):
    _, options = _guidance_case()
    with pytest.raises(ValueError, match="replace_depth"):
        Dpmpp2mSampler(GaussianDiffusion(stubs.StubBackbone(image_size=4))).sample(
            1, steps=2, constrain_depth=options["constrain_depth"])


# --- noise, determinism, registry -----------------------------------------------------------------

def test_same_seed_same_initial_noise_as_ddim_and_ddpm(stubs):
    fw = ClassifierFreeGuidance(stubs.StubBackbone(image_size=4), timesteps=50)
    single = [cls(fw).sample(3, steps=None if cls is DdpmSampler else 4, generator=_gen(9)).noise
              for cls in (DdimSampler, DdpmSampler, Dpmpp2mSampler)]
    assert torch.equal(single[0], single[1]) and torch.equal(single[0], single[2])
    assert torch.equal(single[0], randn((3, 4, 4, 4), _gen(9)))
    per_sample = [cls(fw).sample(2, steps=4, generator=[_gen(4), _gen(6)]).noise
                  for cls in (DdimSampler, Dpmpp2mSampler)]
    assert torch.equal(per_sample[0], per_sample[1])
    assert torch.equal(per_sample[1][1:], torch.randn((1, 4, 4, 4), generator=_gen(6)))


def test_per_sample_generators_make_samples_batch_independent(stubs):
    fw = InpaintCFG(stubs.TinyConvBackbone(in_channels=10), timesteps=50)
    g = _gen(11)
    y, mask = torch.rand(2, 4, 8, 8, generator=g) * 2 - 1, (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()

    def run(seeds, rows):
        # clipped: this untrained stub's raw x_0 (~x_t / alpha) would amplify batch-size rounding differences
        return Dpmpp2mSampler(fw).sample(len(seeds), steps=6, generator=[_gen(s) for s in seeds], clip_denoised=True,
                                         y=y[rows], mask=mask[rows], mask_rgb=mask[rows]).samples

    pair = run([3, 4], [0, 1])
    assert torch.equal(pair, run([3, 4], [0, 1]))
    torch.testing.assert_close(pair[1:], run([4], [1]), atol=1e-4, rtol=0)  # batched-conv rounding only
    torch.testing.assert_close(pair[:1], run([3], [0]), atol=1e-4, rtol=0)
    assert not torch.allclose(pair, run([5, 6], [0, 1]), atol=1e-2)


def test_registry_and_progress(stubs, capsys):
    assert SAMPLERS["dpmpp_2m"] is Dpmpp2mSampler and SAMPLERS["ddim"] is DdimSampler
    SAMPLERS["dpmpp_2m"](GaussianDiffusion(stubs.StubBackbone(image_size=2))).sample(1, steps=3, verbose=True)
    assert "DPM-Solver++" in capsys.readouterr().err
