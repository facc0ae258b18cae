"""Frechet distance and KID, checked against direct NumPy/SciPy computations and closed forms."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from scipy import linalg

from unpaired.metrics.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
    kernel_inception_distance,
)

ROUTES = ("scipy", "eigh")


def direct_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula, written out independently of the module."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a = (a - mu_a).T @ (a - mu_a) / (len(a) - 1)
    s_b = (b - mu_b).T @ (b - mu_b) / (len(b) - 1)
    root = linalg.sqrtm(s_a @ s_b).real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * root))


def direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic kernel, as explicit sums over pairs."""
    d = x.shape[1]

    def k(u, v):
        return (u @ v / d + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return float(xx + yy - 2 * xy)


def correlated(rng: np.random.Generator, n: int, d: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing * scale + shift


def test_statistics_are_float64_mean_and_unbiased_covariance():
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    mu, sigma = feature_statistics(torch.from_numpy(x))
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)
    assert sigma.shape == (6, 6)
    _, one_dim = feature_statistics(x[:, :1])
    assert one_dim.shape == (1, 1)


@pytest.mark.parametrize("route", ROUTES)
def test_fid_matches_direct_computation(route):
    rng = np.random.default_rng(1)
    a = correlated(rng, 300, 12)
    b = correlated(rng, 250, 12, scale=1.5, shift=0.3)
    expected = direct_fid(a, b)
    assert expected > 1
    assert frechet_distance(a, b, sqrtm=route) == pytest.approx(expected, rel=1e-8)


def test_fid_accepts_torch_tensors_of_any_float_dtype():
    rng = np.random.default_rng(2)
    a, b = correlated(rng, 100, 8), correlated(rng, 100, 8, shift=1.0)
    value = frechet_distance(a, b)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(value, rel=1e-12)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(value, rel=1e-5)
    assert frechet_distance(a.tolist(), b) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("route", ROUTES)
def test_fid_of_identical_sets_is_zero(route):
    a = correlated(np.random.default_rng(3), 400, 16)
    assert frechet_distance(a, a.copy(), sqrtm=route) == pytest.approx(0, abs=1e-8)


@pytest.mark.parametrize("route", ROUTES)
def test_fid_of_a_shifted_set_is_the_squared_shift(route):
    rng = np.random.default_rng(4)
    a = correlated(rng, 500, 10)
    shift = rng.normal(size=10)
    # the same samples moved: equal covariances, so exactly ||shift||^2
    assert frechet_distance(a, a + shift, sqrtm=route) == pytest.approx(shift @ shift, rel=1e-8)
    # independent samples of shifted standard Gaussians: ||shift||^2 up to sampling error (std about 0.02)
    small = np.array([0.5, -0.5, 0.5, 0.0])
    x, y = rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4)) + small
    assert frechet_distance(x, y, sqrtm=route) == pytest.approx(0.75, abs=0.07)


@pytest.mark.parametrize("route", ROUTES)
def test_fid_closed_form_for_diagonal_gaussians(route):
    # N(m1, diag(s1^2)) vs N(m2, diag(s2^2)): ||m1 - m2||^2 + sum (s1 - s2)^2
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    m1, m2 = np.zeros(3), np.array([1.0, 0.0, -2.0])
    expected = 5.0 + 4.0 + 1.0 + 0.0
    assert frechet_distance_from_statistics(m1, np.diag(s1**2), m2, np.diag(s2**2), sqrtm=route) == pytest.approx(
        expected, rel=1e-10)


@pytest.mark.parametrize("route", ROUTES)
def test_fid_is_symmetric(route):
    rng = np.random.default_rng(5)
    a, b = correlated(rng, 200, 8), correlated(rng, 120, 8, scale=0.7, shift=-0.4)
    assert frechet_distance(a, b, sqrtm=route) == pytest.approx(frechet_distance(b, a, sqrtm=route), rel=1e-8)


def test_fid_with_singular_covariances_is_finite_and_both_routes_agree():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 0.5  # fewer samples than dimensions
    by_scipy, by_eigh = frechet_distance(a, b, sqrtm="scipy"), frechet_distance(a, b, sqrtm="eigh")
    assert np.isfinite(by_scipy) and by_scipy > 0
    assert by_scipy == pytest.approx(by_eigh, rel=1e-5)
    dead = a.copy()
    dead[:, :8] = 0  # constant features: zero rows and columns in the covariance
    assert np.isfinite(frechet_distance(dead, b, sqrtm="scipy"))
    assert frechet_distance(dead, b, sqrtm="scipy") == pytest.approx(frechet_distance(dead, b, sqrtm="eigh"), rel=1e-5)


def test_fid_works_without_scipy(monkeypatch):
    rng = np.random.default_rng(7)
    a, b = correlated(rng, 200, 8), correlated(rng, 200, 8, shift=0.5)
    expected = direct_fid(a, b)
    monkeypatch.setitem(sys.modules, "scipy", None)  # `import scipy...` now raises ImportError
    monkeypatch.setitem(sys.modules, "scipy.linalg", None)
    with pytest.raises(ImportError):
        import scipy.linalg  # noqa: F401
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_kid_matches_direct_computation_on_whole_sets():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(25, 5)), rng.normal(size=(25, 5)) * 1.3 + 0.2
    mean, std = kernel_inception_distance(a, b, subsets=3, subset_size=100)  # every subset: both whole sets
    assert mean == pytest.approx(direct_mmd2(a, b), rel=1e-10)
    assert std == pytest.approx(0, abs=1e-12)


def test_kid_averages_subsets_drawn_without_replacement():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(40, 4)), rng.normal(size=(60, 4)) + 0.5
    mean, std = kernel_inception_distance(a, b, subsets=5, subset_size=10, seed=3)
    draw_a, draw_b = np.random.default_rng([3, 40]), np.random.default_rng([3, 60])
    values = [direct_mmd2(a[draw_a.choice(40, 10, replace=False)], b[draw_b.choice(60, 10, replace=False)])
              for _ in range(5)]
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_different_ones():
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    c = rng.normal(size=(1000, 16)) * 1.2 + 0.3
    same_mean, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=500)
    diff_mean, diff_std = kernel_inception_distance(a, c, subsets=20, subset_size=500)
    assert abs(same_mean) < 3 * same_std / np.sqrt(20) + 1e-3  # unbiased: centred on 0, either sign
    assert diff_mean > 0.1 and diff_mean > 10 * diff_std
    assert diff_mean > 50 * abs(same_mean)


def test_kid_unbiased_mean_over_many_draws():
    """The estimator's expectation is the true MMD^2 = 0 when both sets come from one distribution
    (the biased V-statistic would be clearly positive at this tiny subset size)."""
    rng = np.random.default_rng(11)
    values = [kernel_inception_distance(rng.normal(size=(8, 3)), rng.normal(size=(8, 3)), subsets=1)[0]
              for _ in range(400)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))


def test_kid_is_exactly_symmetric():
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(80, 6)), rng.normal(size=(50, 6)) + 0.3
    assert kernel_inception_distance(a, b, 10, 30) == pytest.approx(kernel_inception_distance(b, a, 10, 30), rel=1e-12)
    c = rng.normal(size=(80, 6)) * 2
    assert kernel_inception_distance(a, c, 10, 30) == pytest.approx(kernel_inception_distance(c, a, 10, 30), rel=1e-12)


@pytest.mark.parametrize("metric", [frechet_distance, kernel_inception_distance])
def test_input_validation(metric):
    rng = np.random.default_rng(13)
    a = rng.normal(size=(20, 8))
    with pytest.raises(ValueError, match="features_a has 8 features per sample but features_b has 4"):
        metric(a, rng.normal(size=(20, 4)))
    with pytest.raises(ValueError, match=r"features_b has 1 sample.*at least 2"):
        metric(a, rng.normal(size=(1, 8)))
    with pytest.raises(ValueError, match=r"2-D array .*got shape \(8,\)"):
        metric(a[0], a)
    bad = a.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="features_a contains NaN"):
        metric(bad, a)


def test_argument_validation():
    a = np.random.default_rng(14).normal(size=(20, 4))
    with pytest.raises(ValueError, match="sqrtm must be"):
        frechet_distance(a, a, sqrtm="magic")
    with pytest.raises(ValueError, match="subsets must be >= 1"):
        kernel_inception_distance(a, a, subsets=0)
    with pytest.raises(ValueError, match="subset_size must be >= 2"):
        kernel_inception_distance(a, a, subset_size=1)
    with pytest.raises(ValueError, match="do not fit"):
        frechet_distance_from_statistics(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))

