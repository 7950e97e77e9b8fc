"""The condition-usage probe: analytic cases (a model that ignores / copies its condition)."""

import pytest
import torch
from torch import nn

from ivid.diffusion import InpaintCFG
from ivid.training.condition_usage import condition_usage, known_fractions


class _EpsFromCondition(nn.Module):
    """Predicts eps exactly where the condition holds x_0: eps = (x_t - sqrt(ab) y) / sqrt(1 - ab)."""

    in_channels = 10
    num_classes = None

    def __init__(self, uses_condition: bool):
        super().__init__()
        self.uses_condition = uses_condition
        self.dummy = nn.Parameter(torch.zeros(()))
        self.sqrt_ab = self.sqrt_1mab = None

    def forward(self, x_in, t, classes=None):
        x_t = x_in[:, :4]
        if not self.uses_condition:
            return torch.zeros_like(x_t)
        y = torch.cat([x_in[:, 5:8], x_in[:, 8:9]], dim=1)  # channels: x_t, mask_rgb, rgb, depth, mask
        a = self.sqrt_ab[t].view(-1, 1, 1, 1)
        b = self.sqrt_1mab[t].view(-1, 1, 1, 1)
        return (x_t - a * y) / b


def _framework(uses_condition):
    backbone = _EpsFromCondition(uses_condition)
    fw = InpaintCFG(backbone, timesteps=1000)
    backbone.sqrt_ab = torch.tensor(fw.sqrt_alphas_cumprod, dtype=torch.float32)
    backbone.sqrt_1mab = torch.tensor(fw.sqrt_one_minus_alphas_cumprod, dtype=torch.float32)
    return fw


def _batch(n=4, size=8):
    g = torch.Generator().manual_seed(0)
    x_0 = torch.rand(n, 4, size, size, generator=g) * 2 - 1
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.3).float()
    mask_rgb = mask.clone()
    mask_rgb[:, :, :2] = 0
    y = torch.where(mask.bool(), x_0, torch.full_like(x_0, -1.0))
    return {"x_0": x_0, "y": y, "mask": mask, "mask_rgb": mask_rgb}


def test_a_model_that_ignores_its_condition_has_no_gap():
    usage = condition_usage(_framework(False), _batch(), seed=3)
    assert usage["loss_true"] == pytest.approx(usage["loss_shuffled"])
    assert usage["gap"] == pytest.approx(0.0, abs=1e-7)


def test_a_model_that_copies_its_condition_has_gap_one():
    batch = _batch()
    batch["mask_rgb"] = batch["mask"].clone()  # colour known wherever depth is
    usage = condition_usage(_framework(True), batch, seed=3)
    assert usage["loss_true"] < 1e-6
    assert usage["loss_shuffled"] > 0.1
    assert usage["gap"] == pytest.approx(1.0, abs=1e-5)


def test_probe_is_deterministic_and_leaves_global_rng_and_mode_alone():
    fw = _framework(True)
    fw.backbone.train()
    state = torch.get_rng_state()
    a = condition_usage(fw, _batch(), seed=5)
    b = condition_usage(fw, _batch(), seed=5)
    assert a == b
    assert torch.equal(state, torch.get_rng_state())
    assert fw.backbone.training


def test_gap_is_the_mean_of_per_sample_gains():
    """A sample at small t with a huge loss must not dominate: the gap averages per-sample ratios."""
    fw = _framework(True)
    batch = _batch()
    batch["mask_rgb"] = batch["mask"].clone()
    batch["y"][0] = batch["y"][0] + 0.5 * batch["mask"][0]  # sample 0's condition is off: gain < 1
    usage = condition_usage(fw, batch, seed=3)
    import ivid.training.condition_usage as cu

    per_true = cu._masked_eps_loss  # recompute per-sample gains with the same draws
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 1000, (4,), generator=g)
    noise = torch.randn(batch["x_0"].shape, generator=g)
    x_t = fw.diffuse(batch["x_0"], t, noise)
    cond = {k: batch[k] for k in ("y", "mask", "mask_rgb")}
    rolled = {k: torch.roll(v, 1, 0) for k, v in cond.items()}
    lt = per_true(fw, x_t, t, noise, None, cond, batch["mask"], 4)
    ls = per_true(fw, x_t, t, noise, None, rolled, batch["mask"], 4)
    assert usage["gap"] == pytest.approx(float((1 - lt / ls).mean()), rel=1e-5)
    assert usage["gap"] < 1.0


def test_known_fractions_and_tiny_batches():
    batch = _batch()
    fr = known_fractions(batch)
    assert fr["known_depth"] == pytest.approx(float(batch["mask"].mean()))
    assert fr["known_rgb"] < fr["known_depth"]
    one = {k: v[:1] for k, v in batch.items()}
    assert condition_usage(_framework(True), one, seed=0) == {}
    empty = dict(batch, mask=torch.zeros_like(batch["mask"]))
    assert condition_usage(_framework(True), empty, seed=0) == {}
