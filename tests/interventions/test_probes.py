"""Linear probes: planted labels are decoded, shuffled labels give chance, transfer cross-fits."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign.interventions.probes import probe_accuracy, transfer_accuracy


def _planted(n=300, d=20, n_classes=3, seed=0):
    """Gaussian noise plus a class-dependent shift along a random direction per class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(n_classes, size=n)
    centres = 4.0 * rng.normal(size=(n_classes, d))
    return rng.normal(size=(n, d)) + centres[y], y


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_linear_label_is_decoded(seed):
    X, y = _planted(seed=seed)
    result = probe_accuracy(X.astype(np.float32), y, random_state=seed)
    assert result.accuracy >= 0.98
    assert result.fold_accuracies.shape == (5,)
    assert result.n_classes == 3
    assert result.n_samples == 300


@pytest.mark.parametrize("seed", [0, 1])
def test_shuffled_labels_give_chance(seed):
    X, y = _planted(n=400, seed=seed)
    rng = np.random.default_rng(100 + seed)
    result = probe_accuracy(X, rng.permutation(y), n_permutations=20, random_state=seed)
    assert abs(result.accuracy - 1 / 3) < 0.08
    assert result.p_value > 0.05
    assert abs(result.null_mean - 1 / 3) < 0.05


def test_permutation_p_value_is_small_for_a_real_label():
    X, y = _planted(n=200)
    result = probe_accuracy(X, y, n_permutations=19)
    assert result.p_value == pytest.approx(1 / 20)
    assert result.n_permutations == 19
    assert result.null_mean < 0.5


def test_chance_is_the_majority_share():
    X, _ = _planted(n=100)
    y = np.array(["a"] * 70 + ["b"] * 30)
    assert probe_accuracy(X, y).chance == pytest.approx(0.7)


def test_transfer_survives_an_offset_and_scale_between_views():
    X, y = _planted(n=300)
    image_view = 3.0 * X + 50.0  # same geometry, shifted and scaled: the modality gap
    result = transfer_accuracy(X, image_view, y)
    assert result.accuracy >= 0.98


def test_transfer_fails_across_unrelated_views():
    X, y = _planted(n=300)
    rng = np.random.default_rng(5)
    unrelated = rng.normal(size=X.shape)
    assert abs(transfer_accuracy(X, unrelated, y).accuracy - 1 / 3) < 0.1
    # a rotation of the target view breaks the shared probe, although each view alone decodes y
    rotation, _ = np.linalg.qr(rng.normal(size=(X.shape[1], X.shape[1])))
    rotated = X @ rotation
    assert probe_accuracy(rotated, y).accuracy >= 0.98
    assert transfer_accuracy(X, rotated, y).accuracy < 0.8


def test_same_view_transfer_equals_the_probe():
    X, y = _planted(n=120)
    assert transfer_accuracy(X, X.copy(), y).accuracy == probe_accuracy(X, y).accuracy


def test_bad_inputs():
    X, y = _planted(n=50)
    with pytest.raises(ValueError, match=r"one label per sample \(50\); got shape \(49,\)"):
        probe_accuracy(X, y[:49])
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        probe_accuracy(X, np.zeros(50))
    rare = np.r_[np.zeros(47), np.ones(3)]
    with pytest.raises(ValueError, match=r"labels \[1\.0\] have fewer \(counts \[3\]\)"):
        probe_accuracy(X, rare)
    with pytest.raises(ValueError, match="same number of features"):
        transfer_accuracy(X, X[:, :5], y)
    with pytest.raises(ValueError, match="same number of samples"):
        transfer_accuracy(X, X[:40], y)
    with pytest.raises(ValueError, match="n_splits must be an int >= 2"):
        probe_accuracy(X, y, n_splits=1)
    with pytest.raises(ValueError, match="finite values"):
        probe_accuracy(np.where(X > 3, np.nan, X), y)
