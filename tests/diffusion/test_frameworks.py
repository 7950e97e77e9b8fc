"""Frameworks: CFG formula and batching, InpaintCFG / SuperResCFG input assembly, training losses."""

import pytest
import torch
import torch.nn.functional as F

from ivid.config import build, validate_config
from ivid.diffusion import FRAMEWORKS, ClassifierFreeGuidance, GaussianDiffusion, InpaintCFG, SuperResCFG


def test_registry_and_runtime_args():
    assert set(FRAMEWORKS) == {"GaussianDiffusion", "ClassifierFreeGuidance", "InpaintCFG", "SuperResCFG"}
    for cls in FRAMEWORKS.values():
        assert cls.RUNTIME_ARGS == ("backbone",)


def test_build_from_config_section(stubs):
    cfg = validate_config({"framework": {"name": "InpaintCFG", "args": {
        "timesteps": 1000, "beta_schedule": "linear", "p_uncond": 0.1, "p_uncond_img": 0}}})
    fw = build("framework", cfg, stubs.StubBackbone(in_channels=10))
    assert isinstance(fw, InpaintCFG) and fw.p_uncond == 0.1 and fw.p_uncond_img == 0.0
    assert fw.betas.shape == (1000,)


@pytest.mark.parametrize("strength", [0.0, 1.0, 3.0])
def test_cfg_formula_and_single_batched_call(strength, stubs):
    backbone = stubs.ClassValueBackbone()
    fw = ClassifierFreeGuidance(backbone)
    x_t = torch.randn(3, 4, 8, 8)
    classes = torch.tensor([0, 4, 9])
    eps = fw.model_inference(x_t, torch.tensor([5, 6, 7]), classes, strength=strength)
    eps_c = (classes.float() + 1).reshape(3, 1, 1, 1)
    expected = (1 + strength) * eps_c - strength * stubs.ClassValueBackbone.NULL_VALUE
    torch.testing.assert_close(eps, expected.expand(3, 4, 8, 8))
    assert len(backbone.calls) == 1  # conditional and null passes share one forward
    call = backbone.calls[0]
    if strength == 0:
        assert call["x"].shape[0] == 3 and torch.equal(call["classes"], classes)
    else:
        assert call["x"].shape[0] == 6
        assert torch.equal(call["classes"], torch.tensor([0, 4, 9, -1, -1, -1]))
        assert torch.equal(call["t"], torch.tensor([5, 6, 7, 5, 6, 7]))
        assert torch.equal(call["x"][:3], call["x"][3:])


def test_cfg_unconditional_backbone_single_pass(stubs):
    backbone = stubs.ClassValueBackbone(num_classes=None)
    fw = ClassifierFreeGuidance(backbone)
    fw.model_inference(torch.randn(2, 4, 8, 8), torch.tensor([1, 1]), torch.tensor([1, 2]), strength=3.0)
    assert backbone.calls[0]["x"].shape[0] == 2


def test_cfg_label_dropout_in_training(stubs):
    for p, expect_null in ((1.0, True), (0.0, False)):
        backbone = stubs.StubBackbone()
        fw = ClassifierFreeGuidance(backbone, p_uncond=p)
        fw.training_losses(torch.zeros(4, 4, 8, 8), classes=torch.tensor([1, 2, 3, 4]),
                           generator=torch.Generator().manual_seed(0))
        seen = backbone.calls[0]["classes"]
        assert torch.equal(seen, torch.full((4,), -1) if expect_null else torch.tensor([1, 2, 3, 4]))


def test_training_loss_is_eps_mse(stubs):
    backbone = stubs.StubBackbone()  # predicts eps = 0 -> loss = mean(noise^2)
    fw = GaussianDiffusion(backbone)
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    out = fw.training_losses(torch.zeros(2, 4, 8, 8), t=torch.tensor([3, 900]), noise=noise, pose=torch.zeros(2, 2))
    torch.testing.assert_close(out["loss"], (noise ** 2).mean())
    assert out["loss"].ndim == 0
    torch.testing.assert_close(backbone.calls[0]["x"],
                               fw.diffuse(torch.zeros(2, 4, 8, 8), torch.tensor([3, 900]), noise))


def test_training_timesteps_uniform_and_seeded(stubs):
    fw = GaussianDiffusion(stubs.StubBackbone(), timesteps=50)
    ts = [fw.training_losses(torch.zeros(64, 4, 2, 2), generator=torch.Generator().manual_seed(s))["t"]
          for s in (0, 0, 1)]
    assert torch.equal(ts[0], ts[1]) and not torch.equal(ts[0], ts[2])
    assert ts[0].min() >= 0 and ts[0].max() <= 49 and len(set(ts[0].tolist())) > 20


def _inpaint_inputs(n=2, size=8):
    x_t = torch.arange(1, 5, dtype=torch.float32).reshape(1, 4, 1, 1).expand(n, 4, size, size) * 10  # 10..40
    y = torch.arange(1, 5, dtype=torch.float32).reshape(1, 4, 1, 1).expand(n, 4, size, size) * 100  # 100..400
    mask = torch.zeros(n, 1, size, size)
    mask[..., : size // 2, :] = 1  # top half known depth
    mask_rgb = torch.zeros(n, 1, size, size)
    mask_rgb[..., :, : size // 2] = 1  # left half known colour
    return x_t, y, mask, mask_rgb


def _is_noise(values):
    return values.abs().max() < 8 and 0.5 < values.std() < 1.5


def test_inpaint_input_channel_order_with_mask_rgb(stubs):
    backbone = stubs.StubBackbone(in_channels=10)
    fw = InpaintCFG(backbone)
    x_t, y, mask, mask_rgb = _inpaint_inputs(n=4, size=16)
    fw.model_inference(x_t, torch.zeros(4, dtype=torch.long), None, y=y, mask=mask, mask_rgb=mask_rgb,
                       generator=torch.Generator().manual_seed(0))
    x_in = backbone.calls[0]["x"]
    assert x_in.shape == (4, 10, 16, 16)
    assert torch.equal(x_in[:, 0:4], x_t)
    assert torch.equal(x_in[:, 4:5], mask_rgb)
    known_rgb, unknown_rgb = mask_rgb.bool().expand(4, 3, 16, 16), ~mask_rgb.bool().expand(4, 3, 16, 16)
    assert torch.equal(x_in[:, 5:8][known_rgb], y[:, :3][known_rgb])
    assert _is_noise(x_in[:, 5:8][unknown_rgb])
    assert torch.equal(x_in[:, 8:9][mask.bool()], y[:, 3:4][mask.bool()])
    assert _is_noise(x_in[:, 8:9][~mask.bool()])
    assert torch.equal(x_in[:, 9:10], mask)


def test_inpaint_without_mask_rgb_uses_mask_and_drops_channel(stubs):
    backbone = stubs.StubBackbone(in_channels=9)
    fw = InpaintCFG(backbone)
    x_t, y, mask, _ = _inpaint_inputs(n=4, size=16)
    fw.model_inference(x_t, torch.zeros(4, dtype=torch.long), None, y=y, mask=mask)
    x_in = backbone.calls[0]["x"]
    assert x_in.shape == (4, 9, 16, 16)
    known = mask.bool().expand(4, 3, 16, 16)
    assert torch.equal(x_in[:, 4:7][known], y[:, :3][known]) and _is_noise(x_in[:, 4:7][~known])
    assert torch.equal(x_in[:, 8:9], mask)


def test_inpaint_guided_pass_shares_condition_noise_and_checks_channels(stubs):
    backbone = stubs.StubBackbone(in_channels=10)
    fw = InpaintCFG(backbone)
    x_t, y, mask, mask_rgb = _inpaint_inputs()
    fw.model_inference(x_t, torch.zeros(2, dtype=torch.long), torch.tensor([1, 2]), strength=3.0,
                       y=y, mask=mask, mask_rgb=mask_rgb)
    x_in = backbone.calls[0]["x"]
    assert x_in.shape[0] == 4 and torch.equal(x_in[:2], x_in[2:])
    with pytest.raises(ValueError, match="mask_rgb"):
        fw.model_inference(x_t, torch.zeros(2, dtype=torch.long), y=y, mask=mask)
    with pytest.raises(TypeError, match="unexpected"):
        fw.model_inference(x_t, torch.zeros(2, dtype=torch.long), y=y, mask=mask, mask_rbg=mask_rgb)


def test_inpaint_image_dropout_in_training(stubs):
    """p_uncond_img > 0: as the reference, mask_rgb is never fed (9 channels) and a dropped sample's input
    is [x_t, noise (4), zero mask] (the reference's make_uncond_inputs)."""
    backbone = stubs.StubBackbone(in_channels=9)
    fw = InpaintCFG(backbone, p_uncond=0.0, p_uncond_img=1.0)
    assert not fw.takes_mask_rgb
    x_0 = torch.zeros(2, 4, 8, 8)
    _, y, mask, mask_rgb = _inpaint_inputs()
    fw.training_losses(x_0, classes=torch.tensor([1, 2]), y=y, mask=mask, mask_rgb=mask_rgb,
                       generator=torch.Generator().manual_seed(0))
    x_in = backbone.calls[0]["x"]
    assert x_in.shape[1] == 9 and torch.equal(x_in[:, 8], torch.zeros(2, 8, 8))
    assert _is_noise(x_in[:, 4:8])
    assert torch.equal(backbone.calls[0]["classes"], torch.tensor([1, 2]))


def test_inpaint_without_image_dropout_feeds_mask_rgb_when_given(stubs):
    """p_uncond_img == 0 (released): mask_rgb is fed when the batch has it (10 channels), not otherwise."""
    _, y, mask, mask_rgb = _inpaint_inputs()
    ten = stubs.StubBackbone(in_channels=10)
    InpaintCFG(ten, p_uncond=0.0).training_losses(torch.zeros(2, 4, 8, 8), y=y, mask=mask, mask_rgb=mask_rgb,
                                                  generator=torch.Generator().manual_seed(0))
    assert torch.equal(ten.calls[0]["x"][:, 4:5], mask_rgb)
    nine = stubs.StubBackbone(in_channels=9)
    InpaintCFG(nine, p_uncond=0.0).training_losses(torch.zeros(2, 4, 8, 8), y=y, mask=mask,
                                                   generator=torch.Generator().manual_seed(0))
    assert nine.calls[0]["x"].shape[1] == 9 and torch.equal(nine.calls[0]["x"][:, 8:9], mask)


def test_superres_input_is_bilinear_upsampled_condition(stubs):
    backbone = stubs.StubBackbone(image_size=16, in_channels=8)
    fw = SuperResCFG(backbone)
    x_t = torch.randn(2, 4, 16, 16)
    y = torch.randn(2, 4, 8, 8)
    fw.model_inference(x_t, torch.tensor([3, 3]), y=y)
    x_in = backbone.calls[0]["x"]
    assert torch.equal(x_in[:, :4], x_t)
    torch.testing.assert_close(x_in[:, 4:], F.interpolate(y, size=(16, 16), mode="bilinear", align_corners=False))
    const = torch.full((1, 4, 8, 8), 0.25)
    fw.model_inference(x_t[:1], torch.tensor([3]), y=const)
    torch.testing.assert_close(backbone.calls[1]["x"][:, 4:], torch.full((1, 4, 16, 16), 0.25))
