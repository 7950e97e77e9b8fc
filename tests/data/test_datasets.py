"""Plain and SR datasets: sample format, config building, determinism, failure reporting."""

import inspect
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ivid.config import ConfigError, build, load_config, validate_config
from ivid.data import (
    DATASETS,
    FAILURES_KEY,
    FailureLog,
    ImageNet,
    ImageNetSR,
    SingleCategory,
    SingleCategorySR,
    pop_failures,
)
from ivid.data.index import load_or_build_index

from .conftest import RELEASED, TOY_SIZE


def test_registry_and_runtime_args():
    assert set(DATASETS) == {"ImageNet", "ImageNetWarp", "ImageNetSR", "SingleCategory",
                             "SingleCategoryWarp", "SingleCategorySR"}
    assert all(cls.RUNTIME_ARGS == ("data_dir",) for cls in DATASETS.values())


@pytest.mark.parametrize("name", ["rgbd_imagenet_adm_128_large_cfg", "rgbd_imagenet_adm_128_large_cond",
                                  "rgbd_imagenet_adm_256_128_small_sr", "rgbd_singlecategory_adm_128_small",
                                  "rgbd_singlecategory_adm_128_small_cond",
                                  "rgbd_singlecategory_adm_256_128_small_sr"])
def test_released_dataset_args_match_signatures(configs_dir, name):
    cfg = load_config(configs_dir / f"{name}.json")  # validates dataset.args against the constructor
    assert cfg["dataset"]["args"]["preprocess_depth"] == "z_buffer"


def test_unknown_dataset_key_fails_fast(configs_dir):
    cfg = json.loads((configs_dir / "tiny_uncond.json").read_text())
    cfg["dataset"]["args"]["image_sise"] = 32
    with pytest.raises(ConfigError, match="dataset.args.image_sise.*image_size"):
        validate_config(cfg)


def test_build_from_config(configs_dir, toy_imagenet):
    ds = build("dataset", load_config(configs_dir / "tiny_uncond.json"), str(toy_imagenet))
    assert isinstance(ds, ImageNet) and len(ds) == 9 and ds.num_classes == 3


def test_plain_sample_format(toy_imagenet, toy_single):
    sample = ImageNet(str(toy_imagenet), image_size=16, **RELEASED)[4]
    assert set(sample) == {"x_0", "classes", FAILURES_KEY}
    x_0 = sample["x_0"]
    assert x_0.shape == (4, 16, 16) and x_0.dtype == torch.float32
    assert -1.0 <= float(x_0.min()) and float(x_0.max()) <= 1.0
    assert sample["classes"] == 1 and sample[FAILURES_KEY] == ""  # sorted: 3 per class, index 4 -> class 1
    single = SingleCategory(str(toy_single), image_size=TOY_SIZE, normalize=False, normalize_depth=False,
                            preprocess_depth="z_buffer")[0]
    assert set(single) == {"x_0", FAILURES_KEY}
    assert 0.0 <= float(single["x_0"].min()) and float(single["x_0"].max()) <= 1.0


def test_sample_matches_files(toy_imagenet):
    ds = ImageNet(str(toy_imagenet), image_size=TOY_SIZE, **RELEASED)
    x_0 = ds[0]["x_0"]
    rgb = np.asarray(Image.open(os.path.join(toy_imagenet, ds.index.images[0])), np.float32) / 255
    np.testing.assert_allclose(x_0[:3].permute(1, 2, 0).numpy(), rgb * 2 - 1, atol=1e-6)
    disp = np.load(os.path.join(toy_imagenet, ds.index.depths[0]))["arr_0"].astype(np.float64) / 6250
    z = (disp - 2.0) / (0.01 - 2.0)  # no rescaling: toy depths are > near
    np.testing.assert_allclose(x_0[3].numpy(), z * 2 - 1, atol=2e-6)


def _blur3_uint8_reference(image, sigma):
    """OpenCV's GaussianBlur(img, (3, 3), sigma) on uint8, written out: normalised exp(-k^2 / (2 sigma^2)),
    separable, border reflect-101, rounded to the nearest level."""
    k = np.exp(-np.array([-1.0, 0.0, 1.0]) ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    x = np.pad(image.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="reflect")
    rows = k[0] * x[:, :-2] + k[1] * x[:, 1:-1] + k[2] * x[:, 2:]
    out = k[0] * rows[:-2] + k[1] * rows[1:-1] + k[2] * rows[2:]
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


@pytest.fixture
def sr_folder(tmp_path):
    """2 noisy 48 x 64 (H x W) images with depth: high-frequency content makes the recipe matter."""
    rng = np.random.default_rng(0)
    root = tmp_path / "sr"
    (root / "images").mkdir(parents=True)
    (root / "depths").mkdir()
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / "images" / f"im{k}.png")
        np.savez(root / "depths" / f"im{k}.npz", (6250.0 / rng.uniform(1.0, 50.0, (48, 64))).astype(np.float16))
    return root


def test_sr_condition_is_made_from_the_original_image(sr_folder):
    """The reference's SRDataset: LANCZOS of the ORIGINAL image's short side to image_size_lr, centre crop,
    3x3 Gaussian blur (sigma ~ U(0, 1) + 1e-3) of that uint8 image; depth NEAREST from full resolution."""
    from ivid.data.augment import draw_blur_sigma
    from ivid.data.warp_pairs import sample_generator

    ds = SingleCategorySR(str(sr_folder), image_size=32, image_size_lr=16, **RELEASED)
    for index in range(2):
        sample = ds[index]
        x_0, y = sample["x_0"], sample["y"]
        assert x_0.shape == (4, 32, 32) and y.shape == (4, 16, 16)
        name = os.path.splitext(os.path.basename(ds.index.images[index]))[0]
        with Image.open(sr_folder / "images" / f"{name}.png") as im:
            low = np.asarray(im.resize((21, 16), Image.LANCZOS).crop((2, 0, 18, 16)))  # 64x48 -> 21x16 -> 16x16
        sigma = draw_blur_sigma(sample_generator(ds.sample_seed(index)))
        expected_rgb = _blur3_uint8_reference(low, sigma).astype(np.float32) / 255 * 2 - 1
        np.testing.assert_allclose(y[:3].permute(1, 2, 0).numpy(), expected_rgb, atol=2 / 255 + 1e-6)
        assert float(np.abs(y[:3].permute(1, 2, 0).numpy() - expected_rgb).mean()) < 1e-3
        disp = np.load(sr_folder / "depths" / f"{name}.npz")["arr_0"].astype(np.float64) / 6250
        z_full = np.clip((disp - 2.0) / (0.01 - 2.0), 0, 1).astype(np.float32)
        z_low = np.asarray(Image.fromarray(z_full, "F").resize((21, 16), Image.NEAREST).crop((2, 0, 18, 16)))
        np.testing.assert_allclose(y[3].numpy(), z_low * 2 - 1, atol=1e-6)
    torch.testing.assert_close(ds[1]["y"], sample["y"])  # reproducible
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["y"], sample["y"])  # new blur sigma in another epoch


def test_sr_blur_matches_opencv_semantics_on_uint8():
    from ivid.data.augment import gaussian_blur3_uint8

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    for sigma in (1e-3, 0.3, 0.7, 1.001):
        assert np.array_equal(gaussian_blur3_uint8(image, sigma), _blur3_uint8_reference(image, sigma))
    assert np.array_equal(gaussian_blur3_uint8(image, 1e-3), image)  # sigma ~ 0: no blur
    grey = image[..., 0]
    assert np.array_equal(gaussian_blur3_uint8(grey, 0.5), _blur3_uint8_reference(grey[..., None], 0.5)[..., 0])


def test_single_sr_has_no_classes(toy_single):
    assert "classes" not in SingleCategorySR(str(toy_single), image_size=16, image_size_lr=8, **RELEASED)[1]


def test_bad_constructor_values(toy_imagenet):
    with pytest.raises(ValueError, match="preprocess_depth"):
        ImageNet(str(toy_imagenet), image_size=16, preprocess_depth="disparity")
    with pytest.raises(ValueError, match="near < far"):
        ImageNet(str(toy_imagenet), image_size=16, near=5.0, far=1.0, **RELEASED)
    with pytest.raises(ValueError, match="image_size_lr"):
        ImageNetSR(str(toy_imagenet), image_size=16, image_size_lr=32, **RELEASED)


def _damage(root):
    """Corrupt one image, truncate one depth, delete one depth; return their data-relative paths."""
    index = load_or_build_index(root, "imagenet").to_json()
    corrupt_image, truncated_depth, missing_depth = index["images"][1], index["depths"][4], index["depths"][7]
    (root / corrupt_image).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    data = (root / truncated_depth).read_bytes()
    (root / truncated_depth).write_bytes(data[: len(data) // 2])
    os.remove(root / missing_depth)
    return {1: corrupt_image, 4: truncated_depth, 7: missing_depth}


def test_failures_are_skipped_counted_and_reported(toy_copy):
    bad = _damage(toy_copy)
    ds = ImageNet(str(toy_copy), image_size=16, **RELEASED)
    log = FailureLog()
    for i in range(len(ds)):
        sample = ds[i]
        records = pop_failures(sample)
        log.add(records)
        assert sample["x_0"].shape == (4, 16, 16)
        if i in bad:
            assert records and bad[i] in records[0]
    assert log.count >= 3
    assert {os.path.join(str(toy_copy), p) for p in bad.values()} <= set(log.by_path())
    summary = log.summary()
    assert "data failures" in summary and bad[1] in summary


def test_failures_travel_through_dataloader_workers(toy_copy):
    bad = _damage(toy_copy)
    ds = ImageNet(str(toy_copy), image_size=16, **RELEASED)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    log = FailureLog()
    for batch in loader:
        log.add(pop_failures(batch))
        assert FAILURES_KEY not in batch and batch["x_0"].shape[0] == 3
    assert {os.path.join(str(toy_copy), p) for p in bad.values()} <= set(log.by_path())


def test_replacement_is_deterministic(toy_copy):
    _damage(toy_copy)
    a = ImageNet(str(toy_copy), image_size=16, **RELEASED)[1]
    b = ImageNet(str(toy_copy), image_size=16, **RELEASED)[1]
    torch.testing.assert_close(a["x_0"], b["x_0"])
    assert a["classes"] == b["classes"]


def test_gives_up_after_consecutive_failures(toy_copy):
    for path in (toy_copy / "depths").rglob("*.npz"):
        path.write_bytes(b"broken")
    ds = ImageNet(str(toy_copy), image_size=16, max_consecutive_failures=5, **RELEASED)
    with pytest.raises(RuntimeError, match=r"5 samples in a row could not be loaded"):
        ds[0]


def test_constructor_defaults_are_the_references(toy_imagenet):
    """normalize False, normalize_depth False, prepocess_depth 'none' (a disparity channel), as the reference."""
    for cls in DATASETS.values():
        params = inspect.signature(cls.__init__).parameters
        assert (params["normalize"].default, params["normalize_depth"].default,
                params["preprocess_depth"].default) == (False, False, "none"), cls.__name__
    ds = ImageNet(str(toy_imagenet), image_size=TOY_SIZE)
    x_0 = ds[0]["x_0"]
    assert 0.0 <= float(x_0[:3].min()) and float(x_0[:3].max()) <= 1.0  # colour in [0, 1]
    disp = np.load(os.path.join(toy_imagenet, ds.index.depths[0]))["arr_0"].astype(np.float64) / 6250
    np.testing.assert_allclose(x_0[3].numpy(), np.maximum(disp, 1e-3), rtol=1e-5)  # the disparity itself


@pytest.mark.parametrize("mode", ["none", "to_depth"])
def test_normalize_depth_needs_a_bounded_channel(toy_imagenet, mode):
    with pytest.raises(ValueError, match="normalize_depth"):
        ImageNet(str(toy_imagenet), image_size=16, normalize_depth=True, preprocess_depth=mode)
