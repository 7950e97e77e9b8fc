"""Random draws of the warp/SR conditions and the image operations (blur, per-sample erosion)."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from ivid.data.augment import (
    camera_modelview,
    check_augments,
    draw_blur,
    draw_camera,
    draw_erode_size,
    draw_noise,
    erode_masks,
    gaussian_blur3,
)


def test_check_augments():
    assert check_augments(["blur", "erode_rgb"]) == ("blur", "erode_rgb")
    with pytest.raises(ValueError, match="prewarp_nosie"):
        check_augments(["prewarp_nosie"])


@pytest.mark.parametrize("sigma", [1e-3, 0.3, 1.001])
def test_blur_matches_torchvision(sigma):
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    ours = gaussian_blur3(x, sigma)
    ref = TF.gaussian_blur(x, [3, 3], [sigma, sigma])
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


def test_blur_per_sample_sigma():
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    sigmas = [0.2, 0.7, 1.0]
    out = gaussian_blur3(x, sigmas)
    for i, s in enumerate(sigmas):
        torch.testing.assert_close(out[i:i + 1], TF.gaussian_blur(x[i:i + 1], [3, 3], [s, s]), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gaussian_blur3(x, 1e-3), x)  # tiny sigma = identity


def _naive_erode(mask, size):
    """Reference: a pixel stays 1 iff every in-image pixel of its size x size window is 1."""
    h, w = mask.shape
    r = size // 2
    out = np.zeros_like(mask)
    for i in range(h):
        for j in range(w):
            out[i, j] = mask[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].min()
    return out


def test_erode_masks_per_sample_sizes():
    g = torch.Generator().manual_seed(2)
    mask = (torch.rand(3, 1, 12, 12, generator=g) > 0.15).float()
    sizes = [1, 3, 5]
    out = erode_masks(mask, sizes)
    for i, size in enumerate(sizes):
        np.testing.assert_array_equal(out[i, 0].numpy(), _naive_erode(mask[i, 0].numpy(), size))
    assert torch.all(out <= mask)


def test_noise_draw_sigma_is_bounded_and_uniform():
    sigmas = []
    for seed in range(200):
        noise = draw_noise((4, 16, 16), 0.005, torch.Generator().manual_seed(seed))
        assert noise.dtype == torch.float32 and noise.shape == (4, 16, 16)
        sigmas.append(float(noise.std()))
    sigmas = np.array(sigmas)
    assert sigmas.max() < 0.005 * 1.15  # sample std of 1024 normals: within ~10% of sigma
    assert 0.0022 < sigmas.mean() < 0.0028  # sigma = 0.005 * U(0, 1) has mean 0.0025


def test_camera_draw_statistics():
    g = torch.Generator().manual_seed(3)
    draws = [draw_camera(g) for _ in range(3000)]
    theta, phi, radius = (np.array([d[k] for d in draws]) for k in range(3))
    center = np.array([d[3] for d in draws])
    assert abs(theta.std() - 0.15) < 0.01 and abs(phi.std() - 0.15) < 0.01
    assert abs(radius.mean() - 1.0) < 0.01 and abs(radius.std() - 0.1) < 0.008
    assert center.shape == (3000, 3) and np.all(np.abs(center.std(0) - 0.05) < 0.004)


def test_camera_modelview_places_eye_on_the_orbit():
    theta, phi, r, center = 0.2, -0.1, 0.9, (0.01, 0.02, -0.03)
    mv = camera_modelview(theta, phi, r, center)
    assert mv.shape == (4, 4) and mv.dtype == np.float32
    eye = np.linalg.inv(mv.astype(np.float64))[:3, 3]
    expected = r * np.array([math.cos(phi) * math.sin(theta), math.sin(phi), math.cos(phi) * math.cos(theta)])
    np.testing.assert_allclose(eye, expected, atol=1e-6)
    c_cam = mv.astype(np.float64) @ np.array([*center, 1.0])
    np.testing.assert_allclose(c_cam[:2], 0.0, atol=1e-6)  # the centre is straight ahead
    assert c_cam[2] < 0


def test_blur_and_erode_draws():
    g = torch.Generator().manual_seed(4)
    blur = [draw_blur(g) for _ in range(2000)]
    use = np.mean([b[0] for b in blur])
    sig = np.array([b[1] for b in blur])
    assert abs(use - 0.8) < 0.03
    assert sig.min() >= 1e-3 and sig.max() <= 1.001 + 1e-9 and abs(sig.mean() - 0.501) < 0.03
    sizes = [draw_erode_size(g) for _ in range(500)]
    assert set(sizes) == {1, 3, 5, 7, 9}
