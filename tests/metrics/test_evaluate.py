"""compute_metrics end to end with a plugged toy extractor, against independent NumPy/SciPy computations."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg, special

from ivid.metrics import (EvaluationRequest, MetricsError, compute_metrics, default_cache_name, load_cache,
                          run_evaluation)

from .conftest import write_images

SIZE = 32


def _independent_features(module, folder, real):
    """Features computed without ivid's loader: own listing, own crop/resize, one batch."""
    paths = []
    for dirpath, _, names in os.walk(folder):
        paths += [os.path.join(dirpath, n) for n in names if n.lower().endswith((".png", ".jpg", ".jpeg"))]
    paths.sort(key=lambda p: os.path.relpath(p, folder))
    images = []
    for path in paths:
        img = Image.open(path).convert("RGB")
        if real:
            w, h = img.size
            s = min(w, h)
            img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            img = img.resize((SIZE, SIZE), Image.LANCZOS)
        images.append(np.asarray(img))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        return module(x).double().numpy()


def _fid(a, b):
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)


def _kid(real, fake, seed, subsets=100, size=1000):
    rng, m, d = np.random.default_rng(seed), min(len(real), len(fake), size), real.shape[1]
    off = ~np.eye(m, dtype=bool)
    values = []
    for _ in range(subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        values.append(kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean())
    return np.mean(values), np.std(values)


def _inception_score(logits, seed, splits=10):
    logits = logits[np.random.default_rng(seed).permutation(len(logits))]
    scores = []
    for chunk in np.split(logits, splits):
        p = special.softmax(chunk, axis=1)
        q = p.mean(0)
        scores.append(np.exp(np.mean(np.sum(p * np.log(p / q), axis=1))))
    return np.mean(scores), np.std(scores)


def _run(real, fake, extractor, **kw):
    kw.setdefault("batch_size", 8)
    kw.setdefault("verbose", False)
    kw.setdefault("image_size", SIZE)
    return compute_metrics(real, fake, feature_extractor=extractor, **kw)


def test_fid_kid_is_equal_independent_computations(folders, toy_features, toy_logits):
    real, fake = folders
    scores = _run(real, fake, toy_features, metrics=("fid", "kid", "is"), logits_extractor=toy_logits, seed=7)
    assert set(scores) == {"fid", "kid_mean", "kid_std", "is_mean", "is_std"}
    f_real, f_fake = _independent_features(toy_features, real, True), _independent_features(toy_features, fake, False)
    assert f_real.shape == (24, 8) and f_fake.shape == (30, 8)
    assert scores["fid"] == pytest.approx(_fid(f_fake, f_real), rel=1e-5)
    kid_mean, kid_std = _kid(f_real, f_fake, seed=7)
    assert scores["kid_mean"] == pytest.approx(kid_mean, rel=1e-5, abs=1e-9)
    assert scores["kid_std"] == pytest.approx(kid_std, rel=1e-5, abs=1e-9)
    is_mean, is_std = _inception_score(_independent_features(toy_logits, fake, False), seed=7)
    assert scores["is_mean"] == pytest.approx(is_mean, rel=1e-5) and scores["is_std"] == pytest.approx(is_std, rel=1e-4)
    assert scores["fid"] > 1e-3 and scores["is_mean"] > 1.0


def test_fid_of_a_folder_with_itself_is_zero(folders, toy_features):
    _, fake = folders
    assert _run(fake, fake, toy_features, metrics=("fid",))["fid"] == pytest.approx(0.0, abs=1e-6)


def test_num_samples_is_a_seeded_choice(folders, toy_features):
    real, fake = folders
    def request(seed):
        return EvaluationRequest(real, fake, ("fid",), SIZE, num_samples=12, batch_size=8, seed=seed, verbose=False)

    report = run_evaluation(request(1), toy_features)
    again = run_evaluation(request(1), toy_features)
    other = run_evaluation(request(2), toy_features)
    assert report.settings["num_fake"] == 12 and report.settings["num_real"] == 24
    assert report.scores == again.scores and report.scores != other.scores
    with pytest.raises(MetricsError, match="num_samples=31"):
        _run(real, fake, toy_features, num_samples=31)


def test_is_alone_needs_no_real_folder(folders, toy_features, toy_logits):
    _, fake = folders
    scores = _run(None, fake, toy_features, metrics=["is"], logits_extractor=toy_logits)
    assert set(scores) == {"is_mean", "is_std"}
    with pytest.raises(MetricsError, match="logits_extractor"):
        _run(None, fake, toy_features, metrics=["is"])
    with pytest.raises(MetricsError, match="need real images"):
        _run(None, fake, toy_features, metrics=["fid"])


def test_cache_reuse_skips_feature_extraction(folders, toy_features, tmp_path):
    real, fake = folders
    opts = dict(cache_dir=str(tmp_path / "cache"), real_cache_name="r", fake_cache_name="f")
    first = _run(real, fake, toy_features, **opts)
    assert toy_features.calls == 3 + 4  # 24 real + 30 fake images in batches of 8
    assert os.path.isfile(tmp_path / "cache" / "r.npz") and os.path.isfile(tmp_path / "cache" / "f.npz")
    second = _run(real, fake, toy_features, **opts)
    assert toy_features.calls == 7 and second == first
    _run(real, fake, toy_features, use_fake_cache=False, **opts)
    assert toy_features.calls == 7 + 4


def test_without_use_cache_existing_cache_is_left_unchanged(folders, toy_features, tmp_path):
    real, fake = folders
    opts = dict(cache_dir=str(tmp_path), real_cache_name="r", use_real_cache=False, use_fake_cache=False)
    _run(real, fake, toy_features, **opts)
    before = (tmp_path / "r.npz").read_bytes()
    _run(real, fake, toy_features, **opts)
    assert toy_features.calls == 14 and (tmp_path / "r.npz").read_bytes() == before


def test_overwrite_cache_recomputes_and_replaces(folders, toy_features, tmp_path):
    real, fake = folders
    opts = dict(cache_dir=str(tmp_path), real_cache_name="r", fake_cache_name="f")
    _run(real, fake, toy_features, mode="clean", **opts)
    with pytest.raises(MetricsError, match="r.npz: cache does not match.*mode: cached 'clean'.*--overwrite_cache"):
        _run(real, fake, toy_features, mode="legacy_tensorflow", **opts)
    calls = toy_features.calls
    scores = _run(real, fake, toy_features, mode="legacy_tensorflow", overwrite_cache=True, **opts)
    assert toy_features.calls == calls + 7
    assert load_cache(str(tmp_path / "r.npz"))[1]["mode"] == "legacy_tensorflow"
    assert _run(real, fake, toy_features, mode="legacy_tensorflow", **opts) == scores
    assert toy_features.calls == calls + 7


def test_changed_folder_invalidates_cache_and_absent_folder_reuses_it(folders, toy_features, tmp_path):
    real, fake = folders
    opts = dict(cache_dir=str(tmp_path / "cache"), real_cache_name="r")
    scores = _run(real, fake, toy_features, **opts)
    moved = str(tmp_path / "moved")
    os.rename(real, moved)
    assert _run(real, fake, toy_features, **opts) == scores  # folder gone: cache used as it is
    with pytest.raises(MetricsError, match="does not exist"):
        _run(real, fake, toy_features, use_real_cache=False, **opts)
    os.rename(moved, real)
    write_images(os.path.join(real, "extra"), 1, (48, 40), seed=9)
    with pytest.raises(MetricsError, match="count: cached 24, requested 25.*files_sha1"):
        _run(real, fake, toy_features, **opts)


def test_fake_cache_without_logits_is_recomputed_for_is(folders, toy_features, toy_logits, tmp_path):
    real, fake = folders
    opts = dict(cache_dir=str(tmp_path), fake_cache_name="f", logits_extractor=toy_logits)
    _run(real, fake, toy_features, metrics=["fid"], **opts)
    assert load_cache(str(tmp_path / "f.npz"))[0].logits is None
    _run(real, fake, toy_features, metrics=["fid", "is"], **opts)
    assert load_cache(str(tmp_path / "f.npz"))[0].logits.shape == (30, 10)
    calls = toy_features.calls
    _run(real, fake, toy_features, metrics=["is"], **opts)
    assert toy_features.calls == calls


def test_wrong_size_fake_image_is_named(folders, toy_features):
    real, fake = folders
    Image.new("RGB", (33, 32)).save(os.path.join(fake, "odd_one.png"))
    with pytest.raises(MetricsError, match=r"odd_one\.png: fake image is 33x32 pixels, expected 32x32"):
        _run(real, fake, toy_features)


def test_unreadable_real_image_is_named_also_from_loader_workers(folders, toy_features):
    real, fake = folders
    with open(os.path.join(real, "corrupt.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 truncated")
    for workers in (0, 2):
        with pytest.raises(MetricsError, match=r"corrupt\.jpg: cannot read image"):
            _run(real, fake, toy_features, num_workers=workers)


def test_empty_fake_folder_is_an_error(folders, toy_features, tmp_path):
    real, _ = folders
    (tmp_path / "empty").mkdir()
    with pytest.raises(MetricsError, match="no images .* found under fake image folder"):
        _run(real, str(tmp_path / "empty"), toy_features)


def test_unknown_metric_and_mode_are_errors(folders, toy_features):
    real, fake = folders
    with pytest.raises(MetricsError, match="choose among fid, kid, is"):
        _run(real, fake, toy_features, metrics=["fid", "lpips"])
    with pytest.raises(MetricsError, match="unknown clean-fid mode"):
        _run(real, fake, toy_features, mode="tf")


def test_evaluation_request_checks_its_fields(folders):
    real, fake = folders
    request = EvaluationRequest(real, fake, ["KID", "fid", "kid"])
    assert request.metrics == ("kid", "fid") and request.cache_dir == os.path.join("metrics", "cache")
    for bad, match in (({"batch_size": 0}, "batch_size=0"), ({"num_samples": 0}, "num_samples=0"),
                       ({"seed": -1}, "seed=-1"), ({"image_size": 1.5}, "image_size=1.5")):
        with pytest.raises(MetricsError, match=match):
            EvaluationRequest(real, fake, **bad)
    with pytest.raises(MetricsError, match="need real images"):
        EvaluationRequest(None, fake, ("fid",))
    assert EvaluationRequest(None, fake, ("is",)).needs_real is False


def test_default_cache_name_uses_the_path_tail():
    name = default_cache_name("/x/samples/imagenet128/viewset_random_steps_u1000_c50_guidance3.0/results",
                              "legacy_tensorflow", 128)
    assert name == "imagenet128_viewset_random_steps_u1000_c50_guidance3.0_results_legacy_tensorflow_128"
    assert default_cache_name("/data/my set", "clean", 64) == "data_my_set_clean_64"
