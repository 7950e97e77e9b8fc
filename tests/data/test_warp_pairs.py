"""Warp datasets: sample format, each augmentation's effect, determinism, worker path == device path."""

import pytest
import torch

from ivid.data import (FAILURES_KEY, SEED_KEY, DeviceBatchDataset, ImageNet, ImageNetWarp, SingleCategoryWarp,
                       builds_batch_on_device)
from ivid.data.augment import AUGMENTS, gaussian_blur3
from ivid.data.warp_pairs import WarpDraw, build_warp_pair, draw_warp, sample_generator

from .conftest import RELEASED, TOY_SIZE, needs_renderer

pytestmark = needs_renderer
RELEASED_AUGMENTS = ["prewarp_noise", "blur", "erode_rgb"]


def _identity_draw(**changes):
    draw = WarpDraw(prewarp_noise=None, theta=0.0, phi=0.0, radius=1.0, center=(0.0, 0.0, 0.0),
                    postwarp_noise=None, use_blur=False, blur_sigma=0.0, erode_size=1)
    for key, value in changes.items():
        setattr(draw, key, value)
    return draw


@pytest.fixture(scope="module")
def x01(toy_single64):
    ds = SingleCategoryWarp(str(toy_single64), image_size=64, normalize=False, normalize_depth=False,
                            preprocess_depth="z_buffer")
    return torch.from_numpy(ds.load_rgbd01(0))


@pytest.fixture(scope="module")
def clean(x01):
    """The identity warp of ``x01`` without augmentations."""
    return build_warp_pair(x01, _identity_draw())


def test_sample_format(toy_imagenet):
    ds = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, augments=RELEASED_AUGMENTS, **RELEASED)
    sample = ds[3]
    assert set(sample) == {"x_0", "y", "mask", "mask_rgb", "pose", "classes", FAILURES_KEY}
    for key, channels in (("x_0", 4), ("y", 4), ("mask", 1), ("mask_rgb", 1)):
        assert sample[key].shape == (channels, TOY_SIZE, TOY_SIZE) and sample[key].dtype == torch.float32
    assert sample["pose"].shape == (2,) and sample["pose"].dtype == torch.float32
    assert isinstance(sample["classes"], int)
    y, mask, mask_rgb = sample["y"], sample["mask"], sample["mask_rgb"]
    assert -1.0 - 1e-6 <= float(y.min()) and float(y.max()) <= 1.0 + 1e-6
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and set(mask_rgb.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(mask_rgb <= mask)
    assert 0.02 < float(mask.mean()) < 0.95  # holes, masked frame border (32 x 32 keeps few pixels)
    assert torch.all(y[:, mask[0] == 0] == -1.0)  # masked pixels are -1 in every channel
    assert torch.all(y[:3, mask_rgb[0] == 0] == -1.0)
    draw = draw_warp(sample_generator(ds.sample_seed(3)), TOY_SIZE, RELEASED_AUGMENTS)
    torch.testing.assert_close(sample["pose"], torch.tensor([draw.theta, draw.phi], dtype=torch.float32))


def test_single_category_warp_has_no_classes(toy_single):
    sample = SingleCategoryWarp(str(toy_single), image_size=TOY_SIZE, **RELEASED)[0]
    assert "classes" not in sample and sample["y"].shape == (4, TOY_SIZE, TOY_SIZE)


def test_identity_warp_reproduces_the_input(x01, clean):
    out = clean
    mask = out["mask"][0].bool()
    assert float(mask.float().mean()) > 0.6  # the frame border and true depth discontinuities only
    assert torch.all(out["mask_rgb"] == out["mask"])  # no erode_rgb: mask_rgb = mask
    depth_err = (out["y01"][3] - x01[3])[mask].abs()
    assert float(depth_err.max()) < 1e-4
    rgb_err = (out["y01"][:3] - x01[:3])[:, mask].abs()
    assert float(rgb_err.median()) < 0.01  # colours come back (up to the Lanczos downsampling)
    assert torch.all(out["y01"][:, ~mask] == 0)


def test_prewarp_noise_perturbs_within_sigma(x01, clean):
    sigma = 0.004
    noise = torch.randn(x01.shape, generator=torch.Generator().manual_seed(0)) * sigma
    noisy = build_warp_pair(x01, _identity_draw(prewarp_noise=noise))
    both = (clean["mask"] * noisy["mask"])[0].bool()
    diff = (noisy["y01"][3] - clean["y01"][3])[both]
    assert 0.6 * sigma < float(diff.std()) < 1.4 * sigma
    assert float(diff.abs().max()) < 6 * sigma
    torch.testing.assert_close(diff, noise[3][both], atol=1e-4, rtol=0)  # depth sampled at the same centres


def test_postwarp_noise_is_added_inside_the_mask(x01, clean):
    noise = torch.randn(x01.shape, generator=torch.Generator().manual_seed(1)) * 0.02
    noisy = build_warp_pair(x01, _identity_draw(postwarp_noise=noise))
    torch.testing.assert_close(noisy["y01"] - clean["y01"], noise * clean["mask"], atol=1e-6, rtol=0)


def test_blur_replaces_rgb_with_the_blurred_original(x01, clean):
    out = build_warp_pair(x01, _identity_draw(use_blur=True, blur_sigma=0.8))
    expected = gaussian_blur3(x01[None, :3], 0.8)[0] * out["mask"]
    torch.testing.assert_close(out["y01"][:3], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["y01"][3], clean["y01"][3])  # depth untouched


def test_erode_rgb_shrinks_mask_rgb_inside_mask(x01, clean):
    from ivid.geometry import erode_mask

    out = build_warp_pair(x01, _identity_draw(erode_size=5))
    torch.testing.assert_close(out["mask"], clean["mask"])
    torch.testing.assert_close(out["mask_rgb"][0], erode_mask(out["mask"][0], 5))
    assert float(out["mask_rgb"].sum()) < float(out["mask"].sum())
    assert torch.all(out["y01"][:3, out["mask_rgb"][0] == 0] == 0)
    torch.testing.assert_close(out["y01"][3], clean["y01"][3])


def test_deterministic_per_seed_epoch_index(toy_imagenet):
    ds = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, augments=list(AUGMENTS), **RELEASED)
    a, b = ds[2], ds[2]
    for key in ("y", "mask", "mask_rgb", "pose"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert not torch.equal(ds[5]["pose"], a["pose"])
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["pose"], a["pose"])
    ds.set_epoch(0)
    torch.testing.assert_close(ds[2]["y"], a["y"], rtol=0, atol=0)
    other_seed = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, augments=list(AUGMENTS), seed=1, **RELEASED)
    assert not torch.equal(other_seed[2]["pose"], a["pose"])


def _compare_with_worker_path(toy_imagenet, device):
    args = dict(image_size=TOY_SIZE, augments=list(AUGMENTS), **RELEASED)
    workers = ImageNetWarp(str(toy_imagenet), **args)
    on_device = ImageNetWarp(str(toy_imagenet), warp_on_device=True, **args)
    indices = [0, 3, 4, 8]
    sample = on_device[0]
    assert set(sample) == {"x_0", SEED_KEY, "classes", FAILURES_KEY}
    batch = torch.utils.data.default_collate([on_device[i] for i in indices])
    out = on_device.build_device_batch(batch, device=device)
    assert out["y"].device.type == torch.device(device).type and out["classes"].device == out["y"].device
    reference = torch.utils.data.default_collate([workers[i] for i in indices])
    torch.testing.assert_close(out["pose"].cpu(), reference["pose"], rtol=0, atol=0)
    torch.testing.assert_close(out["x_0"].cpu(), reference["x_0"], rtol=0, atol=0)
    mask_mismatch = (out["mask"].cpu() != reference["mask"]).float().mean()
    assert float(mask_mismatch) < 0.01
    y_mismatch = ((out["y"].cpu() - reference["y"]).abs() > 1e-3).float().mean()
    assert float(y_mismatch) < 0.02


def test_device_batch_equals_worker_samples_cpu(toy_imagenet):
    _compare_with_worker_path(toy_imagenet, "cpu")


@pytest.mark.gpu
def test_device_batch_equals_worker_samples_cuda(toy_imagenet):
    _compare_with_worker_path(toy_imagenet, "cuda")


def test_only_warp_on_device_datasets_leave_batches_to_the_device(toy_imagenet):
    """Every dataset declares it (DeviceBatchDataset); the trainer builds on the device only where it says so."""
    plain = ImageNet(str(toy_imagenet), image_size=TOY_SIZE, **RELEASED)
    worker = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, **RELEASED)
    device = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, warp_on_device=True, **RELEASED)
    assert all(isinstance(ds, DeviceBatchDataset) for ds in (plain, worker, device))
    assert [builds_batch_on_device(ds) for ds in (plain, worker, device)] == [False, False, True]
    assert not builds_batch_on_device([{"x_0": torch.zeros(4, 2, 2)}])  # a dataset without the interface
    batch = {"x_0": torch.zeros(1, 4, TOY_SIZE, TOY_SIZE)}
    assert plain.build_device_batch(batch) is batch


def test_build_device_batch_needs_seeds(toy_imagenet):
    ds = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, **RELEASED)
    with pytest.raises(KeyError, match="warp_on_device=True"):
        ds.build_device_batch({"x_0": torch.zeros(1, 4, TOY_SIZE, TOY_SIZE)})


# -- WarpSettings: the tunable constants (camera spread, depth-edge tolerances, erosion) -------------
def test_default_settings_are_the_released_values():
    from ivid.data.warp_pairs import WarpSettings

    assert WarpSettings() == WarpSettings(std=0.15, atol=0.02, rtol=0.02, erode_max=9)


def test_settings_change_the_draws_as_documented():
    from ivid.data.warp_pairs import WarpSettings

    wide = [draw_warp(sample_generator(s), 8, RELEASED_AUGMENTS, WarpSettings(std=0.6)) for s in range(400)]
    base = [draw_warp(sample_generator(s), 8, RELEASED_AUGMENTS) for s in range(400)]
    # the same normal draws scaled by the spread: theta is exactly 4x
    assert all(abs(w.theta - 4 * b.theta) < 1e-12 and abs(w.phi - 4 * b.phi) < 1e-12 for w, b in zip(wide, base))
    small = [draw_warp(sample_generator(s), 8, RELEASED_AUGMENTS, WarpSettings(erode_max=3)).erode_size
             for s in range(400)]
    assert set(small) == {1, 3}
    assert {b.erode_size for b in base} == {1, 3, 5, 7, 9}


@pytest.mark.parametrize("bad", [dict(std=-0.1), dict(atol=0.0), dict(erode_max=4), dict(erode_max=0)])
def test_settings_reject_bad_values(bad):
    from ivid.data.warp_pairs import WarpSettings

    with pytest.raises(ValueError):
        WarpSettings(**bad)


def test_larger_tolerances_keep_more_pixels(toy_imagenet):
    """Depth-edge tolerances only remove pixels: a looser one keeps a superset of the stricter mask."""
    def masks(atol):
        ds = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, augments=RELEASED_AUGMENTS,
                          warp_atol=atol, warp_rtol=atol, **RELEASED)
        return torch.stack([ds[i]["mask"] for i in range(4)])

    strict, loose = masks(0.02), masks(0.2)
    assert bool((loose >= strict).all())
    assert float(loose.mean()) > float(strict.mean())


def test_dataset_rejects_bad_erode_max_naming_it(toy_imagenet):
    with pytest.raises(ValueError, match="erode_rgb_max"):
        ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, erode_rgb_max=4, **RELEASED)


def test_mask_rgb_only_with_the_erode_rgb_augment(toy_imagenet):
    """As the reference's WarpDataset: ``mask_rgb`` is part of a sample only when erode_rgb is on."""
    without = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, augments=["prewarp_noise", "blur"], **RELEASED)
    assert "mask_rgb" not in without[1]
    batch = torch.utils.data.default_collate([ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, augments=["blur"],
                                                           warp_on_device=True, **RELEASED)[i] for i in (0, 1)])
    out = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, augments=["blur"], warp_on_device=True,
                       **RELEASED).build_device_batch(batch)
    assert "mask_rgb" not in out and out["mask"].shape == (2, 1, TOY_SIZE, TOY_SIZE)
    with_erode = ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, augments=["erode_rgb"], **RELEASED)[1]
    assert with_erode["mask_rgb"].shape == (1, TOY_SIZE, TOY_SIZE)


def test_warp_datasets_need_a_depth_code(toy_imagenet):
    """The warp reads the depth channel as a depth code: the reference's default 'none' (disparity) and the other
    non-code modes are refused with a message that names the key to set."""
    for mode in ("none", "to_depth", "disparity_minmax", "depth_minmax"):
        with pytest.raises(ValueError, match="prepocess_depth.*z_buffer"):
            ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, preprocess_depth=mode)
    ImageNetWarp(str(toy_imagenet), image_size=TOY_SIZE, preprocess_depth="linear")
