"""Beta schedules, derived tables and the float32 coefficient lookup vs the reference fixtures."""

import json

import numpy as np
import pytest
import torch

from ivid.diffusion import DdimSampler, DdpmSampler, GaussianDiffusion
from ivid.diffusion.schedules import cosine_betas, extract, get_betas, linear_betas

CASES = [("linear", 1000), ("cosine", 1000), ("linear", 250), ("cosine", 250)]
FRAMEWORK_KEYS = ["betas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"]
DDIM_KEYS = ["alphas_cumprod_prev", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod"]
DDPM_KEYS = DDIM_KEYS + ["posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1",
                         "posterior_mean_coef2"]


@pytest.fixture(scope="module")
def schedules(fixtures_dir):
    return dict(np.load(fixtures_dir / "diffusion" / "schedules.npz", allow_pickle=False))


@pytest.mark.parametrize("schedule,T", CASES)
def test_tables_match_fixture(schedules, schedule, T):
    fw = GaussianDiffusion(torch.nn.Identity(), timesteps=T, beta_schedule=schedule)
    tables = [(fw, "", FRAMEWORK_KEYS), (DdimSampler(fw), "ddim_", DDIM_KEYS), (DdpmSampler(fw), "ddpm_", DDPM_KEYS)]
    for obj, prefix, keys in tables:
        for key in keys:
            ours = getattr(obj, key)
            assert ours.dtype == np.float64 and ours.shape == (T,), key
            np.testing.assert_allclose(ours, schedules[f"{schedule}{T}_{prefix}{key}"], rtol=1e-13, atol=1e-300,
                                       err_msg=f"{prefix}{key}")


def test_schedule_closed_forms():
    np.testing.assert_array_equal(linear_betas(1000)[[0, -1]], [1e-4, 0.02])
    np.testing.assert_allclose(linear_betas(250)[[0, -1]], [4e-4, 0.08])
    assert cosine_betas(1000).max() <= 0.999
    with pytest.raises(ValueError, match="beta_schedule"):
        get_betas("quadratic", 10)
    with pytest.raises(ValueError, match="timesteps"):
        get_betas("linear", 10)  # betas up to 2


@pytest.mark.parametrize("schedule,T", CASES)
def test_diffuse_and_reverse_match_fixture(fixtures_dir, schedule, T):
    d = np.load(fixtures_dir / "diffusion" / "diffuse.npz", allow_pickle=False)
    fw = GaussianDiffusion(torch.nn.Identity(), timesteps=T, beta_schedule=schedule)
    x_0, noise, t = (torch.from_numpy(d[k]) for k in ("x0", "noise", f"t_{T}"))
    x_t = fw.diffuse(x_0, t, noise=noise)
    np.testing.assert_allclose(x_t.numpy(), d[f"{schedule}{T}_x_t"], atol=1e-6, rtol=0)
    x_0_back = fw.reverse_diffuse(torch.from_numpy(d[f"{schedule}{T}_x_t"]), t, noise)
    np.testing.assert_allclose(x_0_back.numpy(), d[f"{schedule}{T}_reverse_x0"], atol=1e-6, rtol=0)


def test_diffuse_float64_inputs_use_float32_coefficients(fixtures_dir):
    d = np.load(fixtures_dir / "diffusion" / "diffuse.npz", allow_pickle=False)
    fw = GaussianDiffusion(torch.nn.Identity())
    x_t = fw.diffuse(torch.from_numpy(d["x0"]).double(), torch.from_numpy(d["t_1000"]),
                     noise=torch.from_numpy(d["noise"]).double())
    assert x_t.dtype == torch.float64
    np.testing.assert_allclose(x_t.numpy(), d["linear1000_x_t_from_f64_inputs"], atol=1e-12, rtol=0)


def test_extract_shape_and_dtype():
    coef = extract(np.arange(5, dtype=np.float64) / 3, torch.tensor([4, 0]), 4)
    assert coef.shape == (2, 1, 1, 1) and coef.dtype == torch.float32
    assert coef[0, 0, 0, 0] == torch.tensor(4 / 3, dtype=torch.float32)


def test_ddim_pairs_match_fixture(fixtures_dir):
    ref = json.loads((fixtures_dir / "diffusion" / "ddim_timesteps.json").read_text())
    sampler = DdimSampler(GaussianDiffusion(torch.nn.Identity()))
    for steps, pairs in ref["pairs"].items():
        assert sampler.timestep_pairs(int(steps)) == [tuple(p) for p in pairs], steps
    assert DdpmSampler(GaussianDiffusion(torch.nn.Identity())).timesteps() == ref["ddpm_model_t"]
