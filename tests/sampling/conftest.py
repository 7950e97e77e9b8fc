"""Tiny random-weight G_u / G_c in the released checkpoint format (bare state_dicts), built once."""

import pytest
import torch

from ivid.config import load_config
from ivid.models import AdmUnet2d

TINY_UNCOND = "configs/tiny_uncond.json"
TINY_COND = "configs/tiny_cond.json"


def random_state_dict(config_path, seed):
    """All parameters re-drawn (the default init zeroes the output layers, which makes eps = 0)."""
    model = AdmUnet2d(**load_config(config_path)["backbone"]["args"])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim >= 2:
                param.copy_(noise / (param[0].numel() ** 0.5))
            elif name.endswith("weight"):
                param.copy_(1 + 0.1 * noise)
            else:
                param.copy_(0.05 * noise)
    return model.state_dict()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, repo_root):
    folder = tmp_path_factory.mktemp("tiny_ckpts")
    paths = {"config_uncond": str(repo_root / TINY_UNCOND), "config_cond": str(repo_root / TINY_COND),
             "ckpt_uncond": str(folder / "uncond.pt"), "ckpt_cond": str(folder / "cond.pt")}
    torch.save(random_state_dict(paths["config_uncond"], 1), paths["ckpt_uncond"])
    torch.save(random_state_dict(paths["config_cond"], 2), paths["ckpt_cond"])
    return paths


@pytest.fixture(scope="session")
def tiny_frameworks(tiny_models):
    from ivid.model_loading import load_framework

    g_u = load_framework(tiny_models["config_uncond"], tiny_models["ckpt_uncond"], "cpu")
    g_c = load_framework(tiny_models["config_cond"], tiny_models["ckpt_cond"], "cpu")
    return g_u, g_c
