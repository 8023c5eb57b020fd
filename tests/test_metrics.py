"""FVD/FID (Fréchet distance), KVD (polynomial-kernel MMD²) and the I3D preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aid_model.metrics import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    i3d_preprocess,
    inception_preprocess,
    kernel_distance,
    video_metrics,
)
from aid_model.metrics import kernel as kernel_module


def features(rng, n, dim, shift=0.0, scale=1.0):
    """n samples of a correlated Gaussian: the correlation depends on dim only."""
    mixing = np.random.default_rng(dim).normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(n, dim)) @ mixing * scale + shift


# ----- Fréchet distance ----------------------------------------------------------------


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook computation: np.cov and scipy.linalg.sqrtm of the product."""
    scipy_linalg = pytest.importorskip("scipy.linalg")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy_linalg.sqrtm(sigma_a @ sigma_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a + sigma_b - 2.0 * np.real(root)))


@pytest.mark.parametrize("dim", [8, 64])
def test_frechet_distance_matches_scipy(dim):
    rng = np.random.default_rng(dim)
    real = features(rng, 500, dim)
    fake = features(rng, 400, dim, shift=0.3, scale=1.5)
    ours = frechet_distance_from_features(real, fake)
    assert ours == pytest.approx(scipy_frechet(real, fake), rel=1e-8, abs=1e-8)
    assert ours > 0.1


def test_frechet_distance_of_identical_sets_is_zero():
    rng = np.random.default_rng(0)
    real = features(rng, 300, 32)
    assert abs(frechet_distance_from_features(real, real.copy())) < 1e-12
    few = features(rng, 10, 32)  # fewer samples than dimensions: singular covariance
    assert abs(frechet_distance_from_features(few, few.copy())) < 1e-12


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 0.0]), np.array([9.0, 1.0, 4.0])
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    ours = frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    assert ours == pytest.approx(expected, abs=1e-12)


def test_feature_statistics_are_float64_and_unbiased():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    mean, cov = feature_statistics(torch.from_numpy(x))
    assert mean.dtype == torch.float64 and cov.shape == (6, 6)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.astype(np.float64), rowvar=False), atol=1e-12)
    with pytest.raises(ValueError, match="N ≥ 2"):
        feature_statistics(x[:1])
    with pytest.raises(ValueError, match="same D"):
        frechet_distance_from_features(x, x[:, :5])
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_from_features(bad, x)


# ----- kernel distance -----------------------------------------------------------------


def reference_kvd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (aᵀb / d + 1)³, written out pair by pair."""
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2.0 * xy


def test_kernel_distance_matches_the_reference_formula():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(25, 5)) + 0.5
    assert kernel_distance(x, y) == pytest.approx(reference_kvd(x, y), rel=1e-10)


def test_kernel_sums_in_blocks_equal_the_whole_matrix(monkeypatch):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(23, 4)), rng.normal(size=(19, 4))
    whole = kernel_distance(x, y)
    monkeypatch.setattr(kernel_module, "_BLOCK", 5)
    assert kernel_distance(x, y) == pytest.approx(whole, rel=1e-12)


def test_kernel_distance_separates_distributions_and_subsets_agree():
    rng = np.random.default_rng(4)
    a, b, shifted = features(rng, 200, 16), features(rng, 200, 16), features(rng, 200, 16, 0.5)
    same, different = kernel_distance(a, b), kernel_distance(a, shifted)
    assert abs(same) < 0.1 * different
    full_subset = kernel_distance(a, shifted, subset_size=200, num_subsets=1)
    assert full_subset == pytest.approx(different, rel=1e-10)  # a permutation changes nothing
    subsets = kernel_distance(a, shifted, subset_size=50, num_subsets=10, seed=1)
    assert subsets == pytest.approx(different, rel=0.3)
    with pytest.raises(ValueError, match="at least 2 samples"):
        kernel_distance(a[:1], b)


def test_video_metrics_reports_both_numbers():
    rng = np.random.default_rng(5)
    real, fake = features(rng, 60, 8), features(rng, 50, 8, 0.2)
    report = video_metrics(real, fake)
    assert report["fvd"] == pytest.approx(frechet_distance_from_features(real, fake))
    assert report["kvd"] == pytest.approx(kernel_distance(real, fake))
    assert (report["num_real"], report["num_generated"], report["feature_dim"]) == (60, 50, 8)
    assert report["warnings"] == [] and report["kvd_subsets"] is None
    assert video_metrics(real[:5], fake)["warnings"]  # 5 samples for 8 dimensions


# ----- preprocessing -------------------------------------------------------------------


def test_i3d_preprocessing_resizes_the_short_side_crops_the_centre_and_keeps_the_range():
    videos = torch.full((2, 3, 3, 256, 320), -1.0)
    videos[..., 160:] = 1.0  # left half black, right half white
    videos[:, :, :, :, :20] = 0.0  # a grey band at the far left, cropped away
    clips = i3d_preprocess(videos)
    assert clips.shape == (2, 3, 3, 224, 224)  # (B, 3, T, 224, 224)
    assert clips.min() >= -1.0 and clips.max() <= 1.0
    assert clips[..., 0].max() == -1.0  # the band (280-wide resize, 28 cut each side) is gone
    assert clips[..., 111].mean() < -0.9 and clips[..., 113].mean() > 0.9
    square = i3d_preprocess(torch.rand(1, 2, 3, 64, 64), value_range=(0.0, 1.0))
    assert square.shape == (1, 3, 2, 224, 224) and square.min() >= -1.0
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        i3d_preprocess(torch.zeros(2, 3, 8, 64, 64))


def test_inception_preprocessing_gives_uint8():
    frames = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3).expand(2, 3, 4, 3)
    images = inception_preprocess(frames)
    assert images.dtype == torch.uint8 and images[0, 0, 0].tolist() == [0, 128, 255]
