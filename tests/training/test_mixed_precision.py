"""Loss scaling, master copies and skipped steps of MixedPrecision (analytic gradients)."""

import pytest
import torch
from torch import nn

from ivid.training.mixed_precision import INITIAL_LOG2_LOSS_SCALE, MixedPrecision, normalize_fp16_mode


class _Tiny(nn.Module):
    """y = sum(w16 * x) + sum(w32 * x): d y / d w = x for both weights."""

    def __init__(self):
        super().__init__()
        self.w16 = nn.Parameter(torch.tensor([0.5, -0.25], dtype=torch.float16))
        self.w32 = nn.Parameter(torch.tensor([1.0, 2.0]))

    def forward(self, x):
        return (self.w16.float() * x).sum() + (self.w32 * x).sum()


def _setup(mode="inflat_all", lr=0.5):
    model = _Tiny()
    mp = MixedPrecision(model, mode, scale_growth=0.5)
    opt = torch.optim.SGD(mp.master_params, lr=lr)
    return model, mp, opt


def test_masters_are_float32_and_fp32_params_are_their_own_master():
    model, mp, _ = _setup()
    assert [m.dtype for m in mp.master_params] == [torch.float32, torch.float32]
    assert mp.master_params[0] is not model.w16 and mp.master_params[1] is model.w32
    assert mp.log2_scale == INITIAL_LOG2_LOSS_SCALE == 20


def test_good_step_unscales_gradients_and_grows_the_scale():
    model, mp, opt = _setup()
    x = torch.tensor([2.0 ** -6, 2.0 ** -5])  # scaled by 2^20 still fits in float16
    mp.backward(model(x))
    assert model.w16.grad.dtype == torch.float16 and model.w16.grad[1].item() == 2.0 ** 15
    info = mp.step(opt)
    assert info["stepped"] == 1.0
    # SGD: w <- w - lr * x, with the UNSCALED gradient x (all values exact in binary)
    assert torch.equal(mp.master_params[0].detach(), torch.tensor([0.5 - 2.0 ** -7, -0.25 - 2.0 ** -6]))
    assert torch.equal(model.w32.detach(), torch.tensor([1.0 - 2.0 ** -7, 2.0 - 2.0 ** -6]))
    assert torch.equal(model.w16.detach(), mp.master_params[0].detach().half())
    assert mp.log2_scale == 20.5
    assert model.w16.grad is None and model.w32.grad is None


def test_float16_gradient_overflow_skips_the_step():
    model, mp, opt = _setup()
    mp.backward(model(torch.tensor([1.0, 1.0])))  # 2^20 does not fit in float16: inf gradient
    assert mp.step(opt)["stepped"] == 0.0
    assert mp.log2_scale == 19.0


def test_non_finite_gradient_skips_the_step_and_lowers_the_scale():
    model, mp, opt = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    masters = [m.detach().clone() for m in mp.master_params]
    model.w32.register_hook(lambda g: g * float("inf"))
    mp.backward(model(torch.tensor([2.0 ** -6, 2.0 ** -6])))
    info = mp.step(opt)
    assert info["stepped"] == 0.0 and info["grad_norm"] == float("inf")
    assert mp.log2_scale == 19.0
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
    assert all(torch.equal(a, b.detach()) for a, b in zip(masters, mp.master_params))
    assert all(p.grad is None for p in model.parameters())


def test_fp32_mode_has_no_loss_scale_but_still_skips_nan():
    with pytest.warns(UserWarning, match="not loss-scaled"):  # float16 weights without inflat_all
        model, mp, opt = _setup(None)
    assert mp.mode == "none" and mp.log2_scale == 0.0
    model.w32.register_hook(lambda g: g * float("nan"))
    mp.backward(model(torch.ones(2)))
    assert mp.step(opt)["stepped"] == 0.0
    assert mp.log2_scale == 0.0


def test_bf16_mode_autocasts_the_forward_pass():
    layer = nn.Linear(4, 4)
    mp = MixedPrecision(layer, "bf16")
    with mp.autocast():
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    assert layer.weight.dtype == torch.float32 and mp.master_params[0] is layer.weight


def test_unknown_mode_is_an_error():
    assert normalize_fp16_mode(None) == normalize_fp16_mode("none") == "none"
    with pytest.raises(ValueError, match="fp16_mode"):
        normalize_fp16_mode("fp8")


class _AllFloat32(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0]))

    def forward(self, x):
        return (self.w * x).sum()


def test_inflat_all_is_off_without_float16_parameters():
    """As the reference (fp16_mode = None when no parameter is float16): no loss scale, so a long run of
    float32 training cannot grow the scale into overflow and skipped steps."""
    model = _AllFloat32()
    mp = MixedPrecision(model, "inflat_all")
    assert mp.mode == "none" and mp.requested_mode == "inflat_all" and not mp.use_loss_scale
    assert mp.log2_scale == 0.0
    opt = torch.optim.SGD(mp.master_params, lr=1.0)
    for _ in range(3):
        mp.backward(model(torch.tensor([2.0 ** -3, 2.0 ** -4])))
        assert torch.equal(model.w.grad, torch.tensor([2.0 ** -3, 2.0 ** -4]))  # not multiplied by 2^20
        assert mp.step(opt)["stepped"] == 1.0
    assert mp.log2_scale == 0.0
    assert MixedPrecision(_Tiny(), "inflat_all").mode == "inflat_all"  # float16 weights keep it
