"""FID / KID / IS formulas against analytic cases and brute-force references."""

import numpy as np
import pytest
import torch
from scipy import linalg

from ivid.metrics import MetricsError, frechet_distance, inception_score, kernel_inception_distance
from ivid.metrics.features import StreamingMoments, kid_rows


def test_fid_one_dimensional_gaussians_closed_form():
    # d = (m1 - m2)^2 + (s1 - s2)^2 for N(m1, s1^2), N(m2, s2^2)
    d = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert d == pytest.approx(9.0 + 1.0, abs=1e-9)


def test_fid_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 6)), rng.normal(0.3, 1.5, size=(60, 6)) @ rng.normal(size=(6, 6))
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_fid_dimension_mismatch_is_an_error():
    with pytest.raises(MetricsError, match="dimensions differ"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def _kid_brute_force(x, y):
    """Unbiased MMD^2 with k = (a.b/D + 1)^3 by explicit loops over pairs."""
    m, dim = len(x), x.shape[1]
    k = lambda a, b: (a @ b / dim + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_on_5x3_features_equals_pairwise_formula():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(5, 3)), rng.normal(0.5, 1.0, size=(5, 3))
    # subset size = n: every subset holds all rows (permuted), so each estimate is the full one
    mean, std = kernel_inception_distance(real, fake, num_subsets=3, rng=np.random.default_rng(0))
    assert mean == pytest.approx(_kid_brute_force(fake, real), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_small_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(400, 4)), rng.normal(size=(400, 4)), rng.normal(1.0, 1.0, size=(400, 4))
    same, _ = kernel_inception_distance(a, b, num_subsets=10, max_subset_size=200, rng=np.random.default_rng(0))
    diff, _ = kernel_inception_distance(a, c, num_subsets=10, max_subset_size=200, rng=np.random.default_rng(0))
    assert abs(same) < 0.05 < diff


def test_kid_needs_two_rows():
    with pytest.raises(MetricsError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_inception_score_analytic_extremes():
    # uniform predictions: p(y|x) = p(y) -> IS = 1
    mean, std = inception_score(np.zeros((40, 7)), splits=4)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)
    # confident, each chunk covers the K classes equally -> IS = K
    k = 5
    logits = np.full((50, k), -1e4)
    logits[np.arange(50), np.arange(50) % k] = 0.0
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_needs_enough_rows():
    with pytest.raises(MetricsError, match="at least 10"):
        inception_score(np.zeros((9, 3)), splits=10)


def test_streaming_moments_equal_numpy_mean_and_cov():
    rng = np.random.default_rng(3)
    x = 1000.0 + rng.normal(size=(37, 5))  # large offset: the shifted sums keep precision
    moments = StreamingMoments(torch.device("cpu"))
    for start in range(0, 37, 8):
        moments.update(torch.from_numpy(x[start:start + 8]).float())
    mu, sigma = moments.mean_and_covariance()
    x32 = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(mu, x32.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x32, rowvar=False), rtol=1e-9, atol=1e-12)


def test_kid_rows_keeps_all_or_a_seeded_subset():
    assert kid_rows(10, 20, seed=0).all()
    keep = kid_rows(100, 30, seed=5)
    assert keep.sum() == 30 and np.array_equal(keep, kid_rows(100, 30, seed=5))
