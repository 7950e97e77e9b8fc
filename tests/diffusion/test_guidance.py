"""replace_rgb / replace_depth / constrain_depth on hand-made tensors (docs/design.md#samplers)."""

import pytest
import torch

from ivid.diffusion.guidance import apply_guidance, check_guidance, constrain_depth, replace_depth, replace_rgb


def _case():
    x_0 = torch.zeros(1, 4, 2, 2)
    x_0[:, :3] = 0.5
    x_0[:, 3] = torch.tensor([[-0.5, 0.2], [0.9, -0.9]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    return x_0, mask


def test_replace_rgb_blends_inside_mask_only():
    x_0, mask = _case()
    cond = torch.full((1, 3, 2, 2), -1.0)
    out = replace_rgb(x_0, 0.1, cond, mask)
    expected_in = 0.1 * -1.0 + 0.9 * 0.5
    assert torch.allclose(out[0, :3, 0, 0], torch.full((3,), expected_in))
    assert torch.equal(out[0, :3, 0, 1], x_0[0, :3, 0, 1])
    assert torch.equal(out[:, 3], x_0[:, 3])


def test_replace_depth_and_constrain_depth():
    x_0, mask = _case()
    depth_cond = torch.full((1, 1, 2, 2), 1.0)
    convex = torch.full((1, 1, 2, 2), 0.0)
    out = replace_depth(x_0, 0.2, depth_cond, mask)
    assert torch.allclose(out[0, 3, 0, 0], torch.tensor(0.2 * 1.0 + 0.8 * -0.5))
    assert torch.equal(out[0, 3, 0, 1], x_0[0, 3, 0, 1]) and torch.equal(out[:, :3], x_0[:, :3])
    out = constrain_depth(x_0, 0.5, convex, mask)
    # outside the mask: (0,1) depth 0.2 > 0 stays; (1,0) 0.9 stays; inside the mask untouched
    assert torch.allclose(out[0, 3], x_0[0, 3])
    x_0[0, 3, 0, 1] = -0.6  # in front of the convex surface (z=0) -> pulled halfway back
    out = constrain_depth(x_0, 0.5, convex, mask)
    assert torch.allclose(out[0, 3, 0, 1], torch.tensor(0.5 * 0.0 + 0.5 * -0.6))
    assert torch.equal(out[0, 3, 1, 1], x_0[0, 3, 1, 1])  # inside the mask: not constrained


def test_apply_guidance_skips_rgb_on_last_step():
    x_0, mask = _case()
    rgb = (0.1, torch.full((1, 3, 2, 2), -1.0), mask)
    assert torch.equal(apply_guidance(x_0, True, replace_rgb=rgb), x_0)
    assert not torch.equal(apply_guidance(x_0, False, replace_rgb=rgb), x_0)


def test_check_guidance():
    with pytest.raises(ValueError, match="replace_depth"):
        check_guidance({"constrain_depth": (0.5, torch.zeros(1))})
    with pytest.raises(ValueError, match="tuple"):
        check_guidance({"replace_rgb": (0.1, torch.zeros(1))})
