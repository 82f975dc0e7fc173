import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from scipy.stats import ortho_group

from geomalign.metrics import distance_correlation, svcca


def _svcca_reference(X, Y, keep=0.99):
    def basis(A):
        U, s, _ = np.linalg.svd(A - A.mean(0), full_matrices=False)
        share = np.cumsum(s**2) / np.sum(s**2)
        r = int(np.searchsorted(share, keep)) + 1 if isinstance(keep, float) else keep
        return U[:, :r]

    rho = np.linalg.svd(basis(X).T @ basis(Y), compute_uv=False)
    return float(np.mean(np.clip(rho, 0, 1)))


def _dcor_squared_reference(X, Y, debiased=False):
    a, b = cdist(X, X), cdist(Y, Y)
    n = len(X)
    if not debiased:

        def centre(d):
            return d - d.mean(0) - d.mean(1)[:, None] + d.mean()

        A, B = centre(a), centre(b)
        return (A * B).mean() / np.sqrt((A * A).mean() * (B * B).mean())

    def u_centre(d):
        D = d - d.sum(0) / (n - 2) - d.sum(1)[:, None] / (n - 2) + d.sum() / ((n - 1) * (n - 2))
        np.fill_diagonal(D, 0.0)
        return D

    A, B = u_centre(a), u_centre(b)
    return (A * B).sum() / np.sqrt((A * A).sum() * (B * B).sum())


def _views(seed, n=120, p=8, q=10):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * np.linspace(3, 0.2, p)
    Y = np.tanh(X @ rng.standard_normal((p, q))) + 0.5 * rng.standard_normal((n, q))
    return X, Y


@pytest.mark.parametrize(("n", "p", "q"), [(120, 8, 10), (30, 50, 40)])
@pytest.mark.parametrize("n_components", [0.99, 0.9, 3])
def test_svcca_matches_svd_reference(n, p, q, n_components):
    X, Y = _views(n + p, n, p, q)
    expected = _svcca_reference(X, Y, n_components)
    assert svcca(X, Y, n_components=n_components) == pytest.approx(expected, rel=1e-8)


def test_svcca_analytic_cases():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 6))
    A = rng.standard_normal((6, 6))  # any invertible linear map
    assert svcca(X, X @ A + 4.0) == pytest.approx(1.0, abs=1e-9)
    unrelated = svcca(X, rng.standard_normal((200, 6)))
    assert unrelated < 0.25
    assert svcca(X, X, n_components=2) == pytest.approx(1.0, abs=1e-9)


def test_svcca_float32_and_torch():
    X, Y = _views(2)
    expected = svcca(X, Y)
    assert svcca(torch.from_numpy(X), torch.from_numpy(Y)) == pytest.approx(expected, rel=1e-12)
    assert svcca(X.astype(np.float32), Y.astype(np.float32)) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_dcor_matches_dense_reference(debiased, seed):
    X, Y = _views(seed, n=90)
    expected = _dcor_squared_reference(X, Y, debiased)
    options = {"squared": True, "debiased": debiased}
    assert distance_correlation(X, Y, **options) == pytest.approx(expected, rel=1e-9)
    chunked = distance_correlation(X, Y, **options, working_memory=1e-3)
    assert chunked == pytest.approx(expected, rel=1e-9)
    if not debiased:  # dCor is the square root of dCor squared
        assert distance_correlation(X, Y) == pytest.approx(np.sqrt(expected), rel=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-2, 1e2), shift=st.floats(-50, 50))
def test_dcor_invariances(seed, scale, shift):
    X, Y = _views(seed % 1000, n=40, p=4, q=5)
    Q = ortho_group.rvs(5, random_state=seed)
    base = distance_correlation(X, Y)
    assert distance_correlation(X, scale * Y @ Q + shift) == pytest.approx(base, rel=1e-7)
    assert distance_correlation(Y, X) == pytest.approx(base, rel=1e-12)
    assert 0.0 <= base <= 1.0
    assert distance_correlation(X, scale * X @ ortho_group.rvs(4, random_state=seed)) == (
        pytest.approx(1.0, abs=1e-7)
    )


def test_dcor_independent_is_small_and_debiased_near_zero():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((300, 5)), rng.standard_normal((300, 5))
    assert distance_correlation(X, Y) < 0.3
    assert abs(distance_correlation(X, Y, squared=True, debiased=True)) < 0.02


@pytest.mark.parametrize(
    ("func", "X", "Y", "kwargs", "error", "match"),
    [
        (svcca, np.ones((5, 2)), np.ones((6, 2)), {}, ValueError, r"X.shape=\(5, 2\)"),
        (svcca, np.eye(5), np.eye(5), {"n_components": 1.5}, ValueError, r"n_components must"),
        (svcca, np.eye(5), np.eye(5), {"n_components": 0}, ValueError, r"n_components must"),
        (
            svcca,
            np.eye(5),
            np.eye(5),
            {"n_components": 9},
            ValueError,
            r"n_components=9 exceeds the rank of centred X \(4",
        ),
        (svcca, np.ones((5, 3)), np.eye(5), {}, ValueError, r"X has no variance"),
        (svcca, np.ones(5), np.eye(5), {}, ValueError, r"X must be a 2-D array"),
        (
            distance_correlation,
            np.eye(3),
            np.eye(3),
            {"squared": True, "debiased": True},
            ValueError,
            r"debiased distance correlation is undefined on 3 samples; it needs at least 4",
        ),
        (
            distance_correlation,
            np.eye(5),
            np.eye(5),
            {"debiased": True},
            ValueError,
            r"estimates dCor squared .* pass squared=True",
        ),
        (
            distance_correlation,
            np.eye(4),
            np.ones((4, 2)),
            {},
            ValueError,
            r"distance variance of Y is 0",
        ),
        (
            distance_correlation,
            np.eye(4),
            np.where(np.eye(4) > 0, np.inf, 0),
            {},
            ValueError,
            r"Y must hold finite values",
        ),
        (
            distance_correlation,
            np.eye(4),
            np.eye(4),
            {"working_memory": -1},
            ValueError,
            r"working_memory must be a positive",
        ),
    ],
)
def test_bad_inputs(func, X, Y, kwargs, error, match):
    with pytest.raises(error, match=match):
        func(X, Y, **kwargs)
