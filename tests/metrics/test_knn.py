import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geomalign.metrics import UndefinedMeasureError, cka, cknna, cycle_knn, mutual_knn

DATA = Path(__file__).resolve().parents[1] / "data"


def _dense_neighbours(F, k):
    """The dense formulation: full similarity matrix, masked diagonal, full argsort."""
    S = F @ F.T
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def _normalise(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _dense_hsic_u(K, L):
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    return (
        (K * L.T).sum() + K.sum() * L.sum() / ((n - 1) * (n - 2)) - 2.0 * (K @ L).sum() / (n - 2)
    ) / (n * (n - 3))


def _dense_cknna(X, Y, k):
    A, B = _normalise(X), _normalise(Y)
    K, L = A @ A.T, B @ B.T
    n = len(K)

    def mask(S):
        M = np.zeros((n, n))
        M[np.arange(n)[:, None], _dense_neighbours(S, k)] = 1.0
        return M

    mk, ml = mask(A), mask(B)
    both = mk * ml
    return _dense_hsic_u(both * K, both * L) / np.sqrt(
        _dense_hsic_u(mk * K, mk * K) * _dense_hsic_u(ml * L, ml * L)
    )


def _views(seed, n=300, noise=2.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 20))
    Y = X @ rng.standard_normal((20, 30)) + noise * rng.standard_normal((n, 30))
    return X, Y


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 10])
def test_matches_dense_formulation(seed, k):
    X, Y = _views(seed)
    nx, ny = _dense_neighbours(_normalise(X), k), _dense_neighbours(_normalise(Y), k)
    n = len(X)
    mutual = np.mean([len(set(a) & set(b)) / k for a, b in zip(nx, ny, strict=True)])
    assert mutual_knn(X, Y, k=k) == pytest.approx(mutual, abs=1e-12)
    cycle = np.mean([i in set(nx[ny[i]].ravel()) for i in range(n)])
    assert cycle_knn(X, Y, k=k) == pytest.approx(cycle, abs=1e-12)
    if k >= 2:
        assert cknna(X, Y, k=k) == pytest.approx(_dense_cknna(X, Y, k), rel=1e-9)


def test_data_overlap_matches_dadapy():
    inputs = np.load(DATA / "reference_inputs.npz")
    expected = json.loads((DATA / "reference_values.json").read_text())["cases"]["overlap_k30"]
    got = mutual_knn(inputs["overlap_a"], inputs["overlap_b"], k=30, metric="euclidean")
    assert got == pytest.approx(expected["value"], abs=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_identical_views_score_one(metric):
    X, _ = _views(2)
    assert mutual_knn(X, X, k=10, metric=metric) == 1.0
    assert mutual_knn(X, 5.0 * X, k=10, metric=metric) == 1.0
    # a cycle can miss even for identical views (k-NN is not a symmetric relation)
    assert cycle_knn(X, X, k=10, metric=metric) > 0.85
    assert cycle_knn(X, 5.0 * X, k=10, metric=metric) == cycle_knn(X, X, k=10, metric=metric)
    assert cknna(X, 3.0 * X, k=10) == pytest.approx(1.0, abs=1e-12)


def test_random_pairing_is_near_chance():
    rng = np.random.default_rng(3)
    n, k = 2000, 10
    X, Y = rng.standard_normal((n, 16)), rng.standard_normal((n, 16))
    chance = k / (n - 1)
    assert mutual_knn(X, Y, k=k) == pytest.approx(chance, abs=3 * np.sqrt(chance / (n * k)) + 1e-3)
    assert abs(cknna(X, Y, k=k)) < 0.05


def test_cknna_with_all_neighbours_is_debiased_cka_of_unit_rows():
    X, Y = _views(4, n=80)
    expected = cka(_normalise(X), _normalise(Y), debiased=True)
    assert cknna(X, Y, k=79) == pytest.approx(expected, rel=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 12))
def test_invariant_to_a_consistent_permutation(seed, k):
    X, Y = _views(seed % 1000, n=60, noise=1.0)
    perm = np.random.default_rng(seed).permutation(60)
    for measure in (mutual_knn, cycle_knn, cknna):
        base = measure(X, Y, k=k)
        assert measure(X[perm], Y[perm], k=k) == pytest.approx(base, abs=1e-12)
        assert 0.0 <= base <= 1.0 + 1e-12 or measure is cknna


def test_mutual_knn_is_symmetric():
    X, Y = _views(5, noise=4.0)
    assert mutual_knn(X, Y) == mutual_knn(Y, X)


@pytest.mark.parametrize("measure", [mutual_knn, cycle_knn, cknna])
def test_chunked_equals_one_shot(measure):
    X, Y = _views(6)
    assert measure(X, Y, working_memory=0.01) == measure(X, Y)


def test_clip_quantile():
    X, Y = _views(7)
    X[:, 0] *= 100.0  # one outlier direction dominates the raw cosine neighbourhoods
    clipped = mutual_knn(X, Y, clip_quantile=0.95)
    assert clipped != mutual_knn(X, Y)

    def clip(A):
        threshold = np.mean(np.quantile(np.abs(A), 0.9, axis=1))
        return np.clip(A, -threshold, threshold)

    manual = mutual_knn(clip(X), clip(Y))
    assert mutual_knn(X, Y, clip_quantile=0.9) == manual


def test_torch_inputs():
    X, Y = _views(8)
    expected = mutual_knn(X, Y)
    assert mutual_knn(torch.from_numpy(X), torch.from_numpy(Y)) == expected
    assert mutual_knn(X, Y, device="cpu") == expected


@pytest.mark.parametrize("measure", [mutual_knn, cycle_knn, cknna])
@pytest.mark.parametrize(
    ("X", "Y", "kwargs", "error", "match"),
    [
        (np.ones((5, 2)), np.ones((6, 2)), {}, ValueError, r"X.shape=\(5, 2\), Y.shape=\(6, 2\)"),
        (np.eye(8), np.eye(8), {"k": 8}, ValueError, r"got k=8 with n_samples=8"),
        (np.eye(8), np.eye(8), {"k": 0}, ValueError, r"got k=0 with n_samples=8"),
        (np.ones(8), np.eye(8), {}, ValueError, r"X must be a 2-D array"),
        (
            np.eye(8),
            np.where(np.eye(8) > 0, np.nan, 0.0),
            {"k": 2},
            ValueError,
            r"Y must hold finite values; rows \[0, 1, 2",
        ),
        (
            np.eye(8),
            np.eye(8),
            {"k": 2, "clip_quantile": 1.0},
            ValueError,
            r"clip_quantile must be in \(0, 1\)",
        ),
    ],
)
def test_bad_inputs(measure, X, Y, kwargs, error, match):
    with pytest.raises(error, match=match):
        measure(X, Y, **kwargs)


def test_bad_metric_and_cknna_k():
    X, Y = _views(9, n=20)
    with pytest.raises(ValueError, match=r"metric must be one of"):
        mutual_knn(X, Y, metric="manhattan")
    with pytest.raises(ValueError, match=r"CKNNA needs k >= 2"):
        cknna(X, Y, k=1)


@pytest.mark.parametrize("measure", [mutual_knn, cycle_knn, cknna])
def test_a_view_with_all_rows_identical_is_undefined(measure):
    X = np.random.default_rng(12).standard_normal((30, 4))
    Y = np.tile(X[:1], (30, 1))  # every neighbour of every row is a tie at distance 0
    with pytest.raises(UndefinedMeasureError, match="all 30 rows of Y are identical"):
        measure(X, Y, k=5)
