"""Frechet distance (FID) and kernel distance (KID) between two sets of features, from any feature network.

Both compare the distributions of two sets of feature vectors (N x D and M x D: e.g. Inception pool features
for FID/KID proper, or the digit network's features of ``unpaired.metrics.digits`` for "digit FID").

- ``frechet_distance`` (Heusel et al., NeurIPS 2017): the Frechet (2-Wasserstein) distance between Gaussians
  fitted to the two sets, ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}). Biased upwards, by an
  amount that shrinks as the sets grow: compare values only at equal set sizes.
- ``kernel_inception_distance`` (Binkowski et al., ICLR 2018, "Demystifying MMD GANs"): the unbiased estimate
  of the squared maximum mean discrepancy with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged
  over random subsets; it can be (slightly) negative, and its mean does not depend on the set sizes.

Features are torch tensors or NumPy arrays; every computation is in float64 NumPy.

The matrix square root. Tr((S_a S_b)^{1/2}) is computed with ``scipy.linalg.sqrtm`` when SciPy is importable
(the route of the reference FID code), else with NumPy alone: S_a S_b is similar to the symmetric positive
semi-definite S_a^{1/2} S_b S_a^{1/2}, so the trace is the sum of the square roots of that matrix's
eigenvalues (two symmetric eigendecompositions; eigenvalues below 0 from rounding are clipped to 0). Both
routes agree to rounding on well-conditioned covariances (tested). As in common practice (pytorch-fid), when
``sqrtm`` gives non-finite values (singular products: fewer samples than dimensions, dead features)
``eps`` is added to both diagonals and the root taken again; a small imaginary part (rounding in ``sqrtm``)
is dropped; if the root is still not finite, or its trace has an imaginary part above 1e-3 relative to
its real part, the NumPy route (which cannot fail that way on covariance matrices) gives the value instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

__all__ = ["feature_statistics", "frechet_distance", "frechet_distance_from_statistics",
           "kernel_inception_distance"]


def _features(x: Any, name: str, min_samples: int = 2) -> np.ndarray:
    """torch tensor / array-like -> N x D float64 array, validated."""
    if hasattr(x, "detach"):  # a torch tensor, on any device and dtype (bf16 included)
        x = x.detach().cpu()
        x = (x if x.dtype == torch.float64 else x.float()).numpy()
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of feature vectors (N samples x D features), "
                         f"got shape {array.shape}")
    if array.shape[0] < min_samples:
        raise ValueError(f"{name} has {array.shape[0]} sample(s); at least {min_samples} are needed")
    if array.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _same_dims(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("features_a", "features_b")) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} has {a.shape[1]} features per sample but {names[1]} has {b.shape[1]}: "
                         "both sets must come from the same feature network")


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D) and covariance (D x D, unbiased: divided by N - 1) of N x D features, in float64."""
    x = _features(features, "features")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _trace_sqrt_scipy(sigma_a: np.ndarray, sigma_b: np.ndarray, eps: float) -> float:
    from scipy import linalg  # function-local: scipy is optional and slow to import (~0.3 s)

    with warnings.catch_warnings():  # "matrix is singular": expected with few samples; checked below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(sigma_a @ sigma_b)
        if not np.isfinite(root).all():
            offset = np.eye(sigma_a.shape[0]) * eps
            root = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    trace = np.trace(root)
    if not np.isfinite(trace) or abs(np.imag(trace)) > 1e-3 * max(1.0, abs(np.real(trace))):
        return _trace_sqrt_eigh(sigma_a, sigma_b, eps)  # sqrtm failed; the symmetric route does not
    return float(np.real(trace))


def _symmetric(m: np.ndarray) -> np.ndarray:
    return (m + m.T) / 2


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (negative rounding eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh(_symmetric(sigma))
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _trace_sqrt_eigh(sigma_a: np.ndarray, sigma_b: np.ndarray, eps: float) -> float:
    try:
        root_a = _sqrt_psd(sigma_a)
        values = np.linalg.eigvalsh(_symmetric(root_a @ sigma_b @ root_a))
    except np.linalg.LinAlgError:
        offset = np.eye(sigma_a.shape[0]) * eps
        root_a = _sqrt_psd(sigma_a + offset)
        values = np.linalg.eigvalsh(_symmetric(root_a @ (sigma_b + offset) @ root_a))
    return float(np.sqrt(np.clip(values, 0, None)).sum())


def _scipy_available() -> bool:
    try:
        import scipy.linalg  # noqa: F401  (function-local: an optional package, probed)
    except ImportError:
        return False
    return True


def frechet_distance_from_statistics(mu_a: Any, sigma_a: Any, mu_b: Any, sigma_b: Any, eps: float = 1e-6,
                                     sqrtm: str = "auto") -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}) for precomputed statistics.

    ``sqrtm``: 'auto' (SciPy when importable, else NumPy), 'scipy' or 'eigh' (NumPy only); see the module
    docstring. ``eps``: the diagonal offset used when the root is not finite."""
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, np.float64)), np.atleast_1d(np.asarray(mu_b, np.float64))
    sigma_a, sigma_b = np.atleast_2d(np.asarray(sigma_a, np.float64)), np.atleast_2d(np.asarray(sigma_b, np.float64))
    d = mu_a.shape[0]
    for name, mu, sigma in (("a", mu_a, sigma_a), ("b", mu_b, sigma_b)):
        if mu.ndim != 1 or sigma.shape != (d, d) or mu.shape[0] != d:
            raise ValueError(f"statistics {name}: mean {mu.shape} and covariance {sigma.shape} do not fit a "
                             f"{d}-dimensional Gaussian")
    if sqrtm == "auto":
        sqrtm = "scipy" if _scipy_available() else "eigh"
    if sqrtm == "scipy":
        trace_root = _trace_sqrt_scipy(sigma_a, sigma_b, eps)
    elif sqrtm == "eigh":
        trace_root = _trace_sqrt_eigh(sigma_a, sigma_b, eps)
    else:
        raise ValueError(f"sqrtm must be 'auto', 'scipy' or 'eigh', got {sqrtm!r}")
    diff = mu_a - mu_b
    distance = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_root)
    return max(distance, 0.0)  # >= 0 in exact arithmetic; identical sets can round to -1e-12


def frechet_distance(features_a: Any, features_b: Any, eps: float = 1e-6, sqrtm: str = "auto") -> float:
    """FID-style Frechet distance between two sets of features (N x D and M x D, N, M >= 2)."""
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    _same_dims(a, b)
    return frechet_distance_from_statistics(*feature_statistics(a), *feature_statistics(b), eps=eps, sqrtm=sqrtm)


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of equal-size sets with k(x, y) = (x.y / D + 1)^3 (diagonal terms left out within sets)."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kernel_inception_distance(features_a: Any, features_b: Any, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0, sampling: str = "keyed") -> tuple[float, float]:
    """KID: mean and standard deviation (over ``subsets``) of the unbiased polynomial-kernel MMD^2 estimate.

    Each subset draws m = min(subset_size, N, M) samples without replacement from each set. ``sampling``:
    'keyed' (default): the draws of a set come from a generator keyed by (``seed``, its size), so the result is
    reproducible and exactly symmetric in its arguments (two sets of equal size are sampled at the same positions);
    'sequential': one ``np.random.RandomState(seed)`` draws set a's subset then set b's, subset after subset, as
    Binkowski et al.'s code and torch-fidelity do (with torch-fidelity's seed 2020 the subsets are theirs), and
    ``subset_size`` larger than a set is an error there, as in theirs. The standard deviation is that of the
    subset estimates (NumPy's default, divided by the number of subsets), as in Binkowski et al.'s code: the
    spread of one subset's value, not the standard error of the mean."""
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    _same_dims(a, b)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    if sampling == "keyed":
        m = min(subset_size, a.shape[0], b.shape[0])
        rng_a = np.random.default_rng([seed, a.shape[0]])
        rng_b = np.random.default_rng([seed, b.shape[0]])
        draws = [(rng_a.choice(a.shape[0], m, replace=False), rng_b.choice(b.shape[0], m, replace=False))
                 for _ in range(subsets)]
    elif sampling == "sequential":
        if subset_size > min(a.shape[0], b.shape[0]):
            raise ValueError(f"KID subset size {subset_size} is larger than a set ({a.shape[0]} and {b.shape[0]} "
                             "samples); give a subset size at most the smaller set's")
        rng = np.random.RandomState(seed)
        draws = [(rng.choice(a.shape[0], subset_size, replace=False), rng.choice(b.shape[0], subset_size,
                                                                                 replace=False))
                 for _ in range(subsets)]
    else:
        raise ValueError(f"sampling must be 'keyed' or 'sequential', got {sampling!r}")
    values = np.array([_polynomial_mmd2(a[i], b[j]) for i, j in draws])
    return float(values.mean()), float(values.std())
