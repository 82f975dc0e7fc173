import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from geomalign.metrics import information_imbalance


def _reference(X, Y, k=1, metric="euclidean"):
    """Dense definition: full distance matrices and full ranks."""
    n = len(X)
    dx, dy = cdist(X, X, metric=metric), cdist(Y, Y, metric=metric)
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    nn = np.argsort(dx, axis=1, kind="stable")[:, :k]
    ranks = [(dy[i] < dy[i, j]).sum() + 1 for i in range(n) for j in nn[i]]
    return 2.0 * np.mean(ranks) / n


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 3])
def test_matches_dense_reference(metric, k):
    rng = np.random.default_rng(k)
    X = rng.standard_normal((150, 5))
    Y = np.concatenate([X[:, :2], rng.standard_normal((150, 3))], axis=1)
    expected = _reference(X, Y, k, metric)
    assert information_imbalance(X, Y, k=k, metric=metric) == pytest.approx(expected, abs=1e-12)
    chunked = information_imbalance(X, Y, k=k, metric=metric, working_memory=1e-3)
    assert chunked == pytest.approx(expected, abs=1e-12)


def test_asymmetry_follows_information_content():
    # X = (a, b) contains Y = a: X predicts Y well, Y predicts X poorly
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((400, 2)), rng.standard_normal((400, 2))
    X, Y = np.concatenate([a, b], axis=1), a
    forward, backward = information_imbalance(X, Y), information_imbalance(Y, X)
    assert forward < 0.2
    assert backward > 0.4
    assert forward < backward


def test_analytic_limits():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 3))
    # identical neighbourhoods: every nearest neighbour has rank 1, so Delta = 2 / n
    assert information_imbalance(X, 3.0 * X) == pytest.approx(2.0 / 500)
    unrelated = information_imbalance(X, rng.standard_normal((500, 3)))
    assert unrelated == pytest.approx(1.0, abs=0.1)


def test_torch_input():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((50, 3)), rng.standard_normal((50, 4))
    expected = information_imbalance(X, Y)
    assert information_imbalance(torch.from_numpy(X), torch.from_numpy(Y)) == expected


@pytest.mark.parametrize(
    ("X", "Y", "kwargs", "error", "match"),
    [
        (np.ones((5, 2)), np.ones((6, 2)), {}, ValueError, r"X.shape=\(5, 2\), Y.shape=\(6, 2\)"),
        (np.eye(5), np.eye(5), {"k": 5}, ValueError, r"got k=5 with n_samples=5"),
        (np.eye(5), np.eye(5), {"metric": "l1"}, ValueError, r"metric must be one of"),
        (
            np.eye(5)[:2],
            np.eye(5)[:2],
            {},
            ValueError,
            r"undefined on 2 samples; it needs at least 3",
        ),
    ],
)
def test_bad_inputs(X, Y, kwargs, error, match):
    with pytest.raises(error, match=match):
        information_imbalance(X, Y, **kwargs)
