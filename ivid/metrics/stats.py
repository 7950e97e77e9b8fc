"""FID, KID and Inception Score from feature arrays (pure NumPy/SciPy), and streaming statistics.

Conventions: features are ``N x D`` arrays (any float dtype; computed in
float64); logits are ``N x C`` unnormalised class scores. Randomness comes only
from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from scipy import linalg, special

from .errors import MetricsError

KID_NUM_SUBSETS = 100
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))`` between two Gaussians.

    Args:
        mu1, mu2: ``D`` means. sigma1, sigma2: ``D x D`` covariances.
        eps: added to both diagonals when ``sqrt(S1 S2)`` is not finite (as clean-fid).

    Returns:
        The distance (float, >= 0 up to rounding).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise MetricsError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]} "
                           "(were both sets computed with the same feature extractor?)")
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise MetricsError(f"FID: matrix square root has a large imaginary part "
                               f"({np.max(np.abs(covmean.imag)):.3g}); too few images for the feature size?")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def kernel_inception_distance(real_features: np.ndarray, fake_features: np.ndarray,
                              num_subsets: int = KID_NUM_SUBSETS, max_subset_size: int = KID_SUBSET_SIZE,
                              rng: Optional[np.random.Generator] = None) -> Tuple[float, float]:
    """KID: unbiased MMD^2 with the kernel ``k(x, y) = (x.y / D + 1)^3``, averaged over random subsets.

    The subset scheme is clean-fid's: ``m = min(n_real, n_fake, max_subset_size)``;
    for each of ``num_subsets`` subsets, ``rng.choice(n_fake, m, replace=False)``
    fake rows are drawn, then ``rng.choice(n_real, m, replace=False)`` real rows.
    Each subset's estimate is ``mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j)
    - 2 mean_{i,j} k(x_i, y_j)``, computed in float64.

    Args:
        real_features, fake_features: ``N x D`` arrays.
        rng: source of the subsets (default: ``numpy.random.default_rng(0)``).

    Returns:
        ``(mean, std)`` over subsets (std with ddof=0, as torch-fidelity).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    dim = real.shape[1]
    m = min(real.shape[0], fake.shape[0], max_subset_size)
    if m < 2:
        raise MetricsError(f"KID needs at least 2 real and 2 fake images (got {real.shape[0]} and {fake.shape[0]})")
    estimates = np.empty(num_subsets)
    for s in range(num_subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        k_xx = (x @ x.T / dim + 1.0) ** 3
        k_yy = (y @ y.T / dim + 1.0) ** 3
        k_xy = (x @ y.T / dim + 1.0) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates[s] = within - 2.0 * k_xy.mean()
    return float(estimates.mean()), float(estimates.std())


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS,
                    rng: Optional[np.random.Generator] = None) -> Tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` over ``splits`` chunks.

    Args:
        logits: ``N x C`` class scores (softmax is applied here, in float64).
        splits: number of chunks; chunk ``i`` holds rows ``[i N // splits, (i+1) N // splits)``.
        rng: when given, rows are first permuted with ``rng.permutation(N)`` (so a
            folder sorted by class does not give class-pure chunks).

    Returns:
        ``(mean, std)`` of the per-chunk scores (std with ddof=0).
    """
    logits = np.asarray(logits, np.float64)
    n = logits.shape[0]
    if n < splits:
        raise MetricsError(f"IS with {splits} splits needs at least {splits} images (got {n})")
    if rng is not None:
        logits = logits[rng.permutation(n)]
    log_p = special.log_softmax(logits, axis=1)
    scores = []
    for i in range(splits):
        chunk = log_p[i * n // splits:(i + 1) * n // splits]
        p = np.exp(chunk)
        log_q = np.log(p.mean(axis=0, keepdims=True))
        kl = (p * (chunk - log_q)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


@dataclass
class FeatureSet:
    """What the metrics need from one image set.

    Attributes:
        count: number of images.
        mu: ``D`` float64 mean of the features.
        sigma: ``D x D`` float64 covariance (``ddof=1``, as ``np.cov``).
        kid_features: ``K x D`` float32 features KID draws its subsets from: all
            of them, or a fixed seeded subset when ``count`` exceeds the cap.
        logits: ``N x C`` float32 logits for IS, or ``None`` when not computed.
    """

    count: int
    mu: np.ndarray
    sigma: np.ndarray
    kid_features: np.ndarray
    logits: Optional[np.ndarray] = None
