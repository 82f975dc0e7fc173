"""Optimal transport: POT reference value, analytic cases, convergence errors, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geomalign.metrics.ot import (
    gromov_wasserstein,
    ot_distance,
    ot_matching_accuracy,
    resampled_ot_distance,
)

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def emd_pair():
    with np.load(DATA / "reference_inputs.npz") as inputs:
        A, B = inputs["emd_a"], inputs["emd_b"]
    value = json.loads((DATA / "reference_values.json").read_text())["cases"]["emd_sqeuclidean"]
    return A, B, value["value"]


def _cloud(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def test_emd_matches_pot_reference(emd_pair):
    A, B, reference = emd_pair
    w2 = ot_distance(A, B)
    assert w2**2 == pytest.approx(reference, rel=1e-9)
    direct = ot.emd2([], [], ot.dist(A.astype(np.float64), B.astype(np.float64)))
    assert w2**2 == pytest.approx(direct, rel=1e-9)
    assert ot_distance(B, A) == pytest.approx(w2, rel=1e-12)
    assert ot_distance(torch.from_numpy(A), torch.from_numpy(B)) == pytest.approx(w2, rel=1e-12)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_translation_costs_its_length(p):
    X = _cloud(60, 5, 0)
    t = np.array([3.0, -1.0, 0.5, 0.0, 2.0])
    assert ot_distance(X, X + t, p=p) == pytest.approx(np.linalg.norm(t), rel=1e-9)
    assert ot_distance(X, X, p=p) < 1e-6


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 12),
    m=st.integers(2, 12),
    dim=st.integers(1, 4),
)
def test_emd_is_a_symmetric_nonnegative_distance(seed, n, m, dim):
    rng = np.random.default_rng(seed)
    X, Y, Z = rng.normal(size=(n, dim)), rng.normal(size=(m, dim)), rng.normal(size=(n, dim))
    xy = ot_distance(X, Y)
    assert xy >= 0.0
    assert xy == pytest.approx(ot_distance(Y, X), rel=1e-9, abs=1e-12)
    assert xy <= ot_distance(X, Z) + ot_distance(Z, Y) + 1e-9


def test_duplicated_cloud_is_at_distance_zero():
    X = _cloud(30, 4, 1)
    assert ot_distance(X, np.concatenate([X, X])) < 1e-6


def test_sinkhorn_divergence_approaches_emd_as_reg_shrinks(emd_pair):
    A, B, _ = emd_pair
    exact = ot_distance(A, B)
    values = [ot_distance(A, B, method="sinkhorn", reg=reg) for reg in (0.05, 0.01, 0.005)]
    assert values[0] < values[1] < values[2] < exact
    assert values[2] == pytest.approx(exact, rel=3e-3)
    assert ot_distance(A, A, method="sinkhorn") == 0.0


def test_sinkhorn_divergence_is_not_dominated_by_the_blur():
    # a cloud and a slightly noisy copy: the plain entropic cost would be ~4x the exact value
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 8))
    Y = X + 0.05 * rng.normal(size=X.shape)
    assert ot_distance(X, Y, method="sinkhorn") == pytest.approx(ot_distance(X, Y), rel=0.1)
    assert ot_distance(X, Y, method="sinkhorn", p=1.0) >= 0.0


def test_sliced_distance_of_shifted_clouds():
    X = _cloud(200, 10, 2)
    t = np.full(10, 0.5)
    sliced = ot_distance(X, X + t, method="sliced", n_projections=2000, random_state=0)
    # every direction theta moves the projected cloud by theta.t: SW_2^2 = E (theta.t)^2 = |t|^2/D
    assert sliced == pytest.approx(np.linalg.norm(t) / np.sqrt(10), rel=0.05)
    assert sliced <= ot_distance(X, X + t)
    again = ot_distance(X, X + t, method="sliced", n_projections=2000, random_state=0)
    assert again == sliced
    generator = np.random.default_rng(0)
    assert ot_distance(X, X, method="sliced", random_state=generator) < 1e-9


def test_gromov_wasserstein_of_an_isometric_copy_is_zero():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(20, 6)))  # isometry into 20 dims
    Y = (2.5 * X @ Q.T + 1.0)[rng.permutation(80)]
    assert gromov_wasserstein(X, Y) < 1e-6
    unrelated = gromov_wasserstein(X, rng.uniform(size=(60, 3)))
    assert unrelated > 0.01


def test_matching_accuracy():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(100, 8))
    noisy = X + 0.05 * rng.normal(size=X.shape)
    assert ot_matching_accuracy(X, noisy) == 1.0
    assert ot_matching_accuracy(X, noisy, method="sinkhorn", reg=0.01) == 1.0
    assert ot_matching_accuracy(X, rng.normal(size=(100, 8))) <= 0.1
    Q, _ = np.linalg.qr(rng.normal(size=(16, 8)))
    assert ot_matching_accuracy(X, X @ Q.T, method="gromov-wasserstein") == 1.0
    with pytest.raises(ValueError, match=r"same width .*Use gromov_wasserstein"):
        ot_matching_accuracy(X, X @ Q.T)


def test_non_convergence_raises(emd_pair):
    A, B, _ = emd_pair
    with pytest.raises(RuntimeError, match=r"EMD did not converge .*Raise max_iter"):
        ot_distance(A, B, max_iter=100)
    with pytest.raises(RuntimeError, match=r"Sinkhorn did not converge in max_iter=5"):
        ot_distance(A, B, method="sinkhorn", reg=0.01, max_iter=5)
    with pytest.raises(RuntimeError, match=r"Gromov-Wasserstein did not converge"):
        gromov_wasserstein(A, B[:, :7], max_iter=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "wasserstein"}, r"method must be one of \('emd', 'sinkhorn', 'sliced'\)"),
        ({"p": 0.5}, r"p must be a number >= 1"),
        ({"reg": 0.0}, r"reg must be a number > 0"),
        ({"max_iter": 0}, r"max_iter must be a positive integer"),
        ({"n_projections": 2.5}, r"n_projections must be a positive integer"),
    ],
)
def test_bad_options_raise(kwargs, match):
    X = _cloud(10, 3, 5)
    with pytest.raises(ValueError, match=match):
        ot_distance(X, X, **kwargs)


def test_bad_arrays_raise():
    X = _cloud(10, 3, 6)
    Y = X.copy()
    Y[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"Y must hold finite values; rows \[4\]"):
        ot_distance(X, Y)
    with pytest.raises(ValueError, match=r"method='sliced' needs X and Y of the same width"):
        ot_distance(X, _cloud(10, 4, 7), method="sliced")
    with pytest.raises(ValueError, match="X and Y must have the same number of samples"):
        ot_matching_accuracy(X, X[:9])
    with pytest.raises(ValueError, match=r"Gromov-Wasserstein \(Y\) is undefined on 1 sample"):
        gromov_wasserstein(X, X[:1])
    with pytest.raises(ValueError, match="X has all 10 rows equal"):
        gromov_wasserstein(np.ones((10, 3)), X)
    with pytest.raises(ValueError, match=r"method must be one of \('emd', 'sinkhorn', 'gromov"):
        ot_matching_accuracy(X, X, method="sliced")


def test_sinkhorn_converges_on_more_than_a_thousand_rows():
    # POT's fixed absorption threshold (1e3) absorbed at every iteration above 1,000 rows, and
    # each marginal check then saw the reset scalings: the iterations never stopped
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(1100, 8)), rng.normal(size=(1100, 8)) + 0.5
    value = ot_distance(X, Y, method="sinkhorn", max_iter=200)  # it took 20 iterations
    stacked = resampled_ot_distance(X, Y, method="sinkhorn", max_iter=200)(np.arange(1100)[None])
    assert stacked[0] == pytest.approx(value, rel=1e-4)
    assert 0.0 < value < ot_distance(X, Y, method="emd")
