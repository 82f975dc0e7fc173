import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from geomalign.metrics import StreamingLinearCKA, UndefinedMeasureError, cka, cka_matrix


def _gram_cka(X, Y, debiased=False):
    """Direct float64 Gram-matrix CKA (Kornblith et al. 2019; Song et al. 2012)."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    K, L = X @ X.T, Y @ Y.T
    n = len(X)
    if not debiased:
        H = np.eye(n) - 1.0 / n
        K, L = H @ K @ H, H @ L @ H

        def hsic(A, B):
            return (A * B).sum()
    else:
        np.fill_diagonal(K, 0.0)
        np.fill_diagonal(L, 0.0)

        def hsic(A, B):
            return (
                (A * B).sum()
                + A.sum() * B.sum() / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * A.sum(1) @ B.sum(1)
            )

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _related(rng, n, p, q, offset=3.0):
    X = rng.standard_normal((n, p)) + offset
    Y = X[:, :1] * rng.standard_normal((1, q)) + rng.standard_normal((n, q))
    return X, Y


# (n, p, q): the first two take the feature-space form, the last two the Gram form.
SHAPES = [(200, 10, 12), (90, 20, 20), (30, 50, 60), (12, 40, 7)]


@pytest.mark.parametrize(("n", "p", "q"), SHAPES)
@pytest.mark.parametrize("debiased", [False, True])
def test_linear_matches_float64_gram(n, p, q, debiased):
    rng = np.random.default_rng(n + p)
    X, Y = _related(rng, n, p, q)
    expected = _gram_cka(X, Y, debiased)
    assert cka(X, Y, debiased=debiased) == pytest.approx(expected, rel=1e-10)
    got32 = cka(X.astype(np.float32), Y.astype(np.float32), debiased=debiased)
    assert got32 == pytest.approx(
        _gram_cka(X.astype(np.float32), Y.astype(np.float32), debiased), rel=1e-5
    )


@pytest.mark.parametrize(("n", "p"), [(100, 8), (20, 50)])
@pytest.mark.parametrize(
    ("kernel", "debiased"), [("linear", False), ("linear", True), ("rbf", False), ("rbf", True)]
)
def test_self_similarity_is_one(n, p, kernel, debiased):
    X = np.random.default_rng(1).standard_normal((n, p))
    assert cka(X, X, kernel=kernel, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-100, 100),
    debiased=st.booleans(),
)
def test_invariant_to_rotation_scaling_translation(seed, scale, shift, debiased):
    rng = np.random.default_rng(seed)
    X, Y = _related(rng, 40, 6, 9, offset=0.0)
    Q = ortho_group.rvs(9, random_state=seed % (2**31))
    base = cka(X, Y, debiased=debiased)
    moved = cka(X, scale * Y @ Q + shift, debiased=debiased)
    assert moved == pytest.approx(base, rel=1e-8, abs=1e-10)
    assert cka(Y, X, debiased=debiased) == pytest.approx(base, rel=1e-12)
    if not debiased:
        assert 0.0 <= base <= 1.0 + 1e-12


def test_rbf_invariant_to_rotation_and_scaling():
    rng = np.random.default_rng(2)
    X, Y = _related(rng, 60, 5, 5)
    Q = ortho_group.rvs(5, random_state=2)
    base = cka(X, Y, kernel="rbf")
    assert cka(7.0 * X @ Q - 2.0, Y, kernel="rbf") == pytest.approx(base, rel=1e-9)
    assert 0.0 < base < 1.0


def test_rbf_with_wide_bandwidth_approaches_linear():
    rng = np.random.default_rng(3)
    X, Y = _related(rng, 80, 6, 6)
    linear = cka(X, Y)
    assert cka(X, Y, kernel="rbf", sigma_factor=200.0) == pytest.approx(linear, abs=1e-3)
    assert cka(X, Y, kernel="rbf", sigma_factor=0.3) != pytest.approx(linear, abs=1e-2)


def test_debiasing_removes_small_sample_inflation():
    rng = np.random.default_rng(4)
    biased, unbiased = [], []
    for _ in range(40):
        X, Y = rng.standard_normal((32, 8)), rng.standard_normal((32, 8))
        biased.append(cka(X, Y))
        unbiased.append(cka(X, Y, debiased=True))
    assert 0.15 < np.mean(biased) < 0.25  # DESIGN.md: ~0.2 at n=32
    assert abs(np.mean(unbiased)) < 0.025
    assert min(unbiased) < 0.0  # the unbiased estimate may be negative; no sqrt of it is taken


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streaming_equals_in_memory(debiased, dtype):
    rng = np.random.default_rng(5)
    X, Y = _related(rng, 503, 17, 11, offset=50.0)
    X, Y = X.astype(dtype), Y.astype(dtype)
    acc = StreamingLinearCKA(debiased=debiased)
    for start, stop in [(0, 1), (1, 100), (100, 101), (101, 350), (350, 503)]:
        acc.update(X[start:stop], torch.from_numpy(Y[start:stop]))
    assert acc.n_samples_ == 503
    assert acc.value() == pytest.approx(cka(X, Y, debiased=debiased), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n", [30, 300])  # Gram form / feature form
def test_cka_matrix_matches_pairs(debiased, n):
    rng = np.random.default_rng(6)
    base = rng.standard_normal((n, 50))
    layers = [
        base[:, :40],
        base[:, 5:45] + rng.standard_normal((n, 40)),
        np.tanh(base) @ rng.standard_normal((50, 60)),
    ]
    sym = cka_matrix(layers, debiased=debiased)
    assert sym.shape == (3, 3)
    np.testing.assert_allclose(sym, sym.T)
    np.testing.assert_allclose(np.diag(sym), 1.0)
    other = [layers[2][:, :50], layers[0]]
    cross = cka_matrix(layers, other, debiased=debiased)
    assert cross.shape == (3, 2)
    for i, X in enumerate(layers):
        for j, Y in enumerate(layers):
            assert sym[i, j] == pytest.approx(cka(X, Y, debiased=debiased), rel=1e-9)
        for j, Y in enumerate(other):
            assert cross[i, j] == pytest.approx(cka(X, Y, debiased=debiased), rel=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n", [30, 300])  # Gram form / feature form
def test_cka_matrix_in_small_stacks_matches_pairs(debiased, n, monkeypatch):
    # stacks of one or two layers (Gram entries in chunks of a few rows): the same map
    from geomalign.metrics import _cka_terms

    monkeypatch.setattr(_cka_terms, "_STACK_BYTES", 8 * n * 70)
    rng = np.random.default_rng(8)
    base = rng.standard_normal((n, 50))
    layers = [base[:, :40], np.tanh(base[:, 5:]), base @ rng.standard_normal((50, 60)), base]
    other = [layers[2][:, :50], layers[0], np.cos(base)]
    for Ys in (None, other):
        out = cka_matrix(layers, Ys, debiased=debiased)
        for i, X in enumerate(layers):
            for j, Y in enumerate(layers if Ys is None else Ys):
                assert out[i, j] == pytest.approx(cka(X, Y, debiased=debiased), rel=1e-9)


def test_torch_input_and_device():
    rng = np.random.default_rng(7)
    X, Y = _related(rng, 50, 4, 6)
    expected = cka(X, Y)
    assert cka(torch.from_numpy(X), torch.from_numpy(Y)) == pytest.approx(expected, rel=1e-12)
    assert cka(X, Y, device="cpu") == pytest.approx(expected, rel=1e-12)
    half = torch.from_numpy(X).to(torch.bfloat16)
    assert cka(half, Y) == pytest.approx(cka(half.float(), Y), rel=1e-12)


def test_float32_norm_trap():
    # Tensor.norm() on ~4M+ float32 values drifts by ~1e-4..1e-3 relative on CPU torch 2.13;
    # every reduction here is in float64, so a float32 run agrees with float64 to rounding.
    rng = np.random.default_rng(8)
    n = 1500
    X = rng.standard_normal((n, n)).astype(np.float32)
    Y = (np.repeat(X[:, : n // 2], 2, axis=1) + rng.standard_normal((n, n))).astype(np.float32)
    expected = _gram_cka(X, Y)
    assert cka(X, Y) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("X", "Y", "kwargs", "error", "match"),
    [
        (np.ones((5, 2)), np.ones((6, 2)), {}, ValueError, r"X.shape=\(5, 2\), Y.shape=\(6, 2\)"),
        (
            np.ones((3, 2)),
            np.ones((3, 2)),
            {"debiased": True},
            UndefinedMeasureError,
            r"debiased CKA is undefined on 3 samples; it needs at least 4",
        ),
        (np.ones((1, 2)), np.ones((1, 2)), {}, UndefinedMeasureError, r"CKA is undefined on 1 "),
        (np.ones(5), np.ones((5, 1)), {}, ValueError, r"X must be a 2-D array"),
        (np.ones((0, 3)), np.ones((0, 3)), {}, ValueError, r"X must be non-empty"),
        (
            np.ones((4, 2)),
            np.array([[0.0], [np.nan], [1.0], [2.0]]),
            {},
            ValueError,
            r"rows \[1\] of Y",
        ),
        (np.eye(4), np.eye(4), {"kernel": "poly"}, ValueError, r"kernel must be one of"),
        (
            np.eye(4),
            np.eye(4),
            {"kernel": "rbf", "sigma_factor": 0},
            ValueError,
            r"sigma_factor must be a positive",
        ),
        (np.ones((6, 3)), np.eye(6), {}, ValueError, r"HSIC of X with itself is 0"),
        (
            np.eye(6),
            np.ones((6, 2)),
            {"kernel": "rbf"},
            ValueError,
            r"median pairwise distance, which is 0 for Y",
        ),
        (np.eye(6), np.eye(6), {"debiased": 1}, TypeError, r"debiased must be True or False"),
    ],
)
def test_bad_inputs(X, Y, kwargs, error, match):
    with pytest.raises(error, match=match):
        cka(X, Y, **kwargs)


def test_streaming_bad_inputs():
    acc = StreamingLinearCKA(debiased=True)
    with pytest.raises(UndefinedMeasureError, match=r"undefined on 0 samples; it needs at least 4"):
        acc.value()
    acc.update(np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match=r"block 1 has widths \(4, 3\) but earlier blocks had"):
        acc.update(np.eye(4), np.eye(4)[:, :3])
    with pytest.raises(ValueError, match=r"X_block.shape=\(2, 3\), Y_block.shape=\(3, 3\)"):
        acc.update(np.eye(3)[:2], np.eye(3))
    with pytest.raises(ValueError, match=r"rows \[0\] of Y_block \(block 1\)"):
        acc.update(np.eye(3), np.where(np.arange(3)[:, None] == 0, np.inf, np.eye(3)))


def test_cka_matrix_bad_inputs():
    with pytest.raises(ValueError, match=r"Xs must be a non-empty sequence"):
        cka_matrix([])
    with pytest.raises(ValueError, match=r"Xs must be a non-empty sequence"):
        cka_matrix(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match=r"Xs\[0\].shape=\(5, 2\), Ys\[1\].shape=\(4, 2\)"):
        cka_matrix([np.eye(5)[:, :2]], [np.eye(5)[:, :2], np.eye(4)[:, :2]])
    bad = np.eye(4)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"rows \[2\] of Xs\[1\]"):
        cka_matrix([np.eye(4), bad])


def test_cka_matrix_takes_the_gram_form_where_it_needs_fewer_products():
    from geomalign.metrics.cka import _gram_form_pays

    widths = [128] * 33
    assert _gram_form_pays(400, widths, widths, symmetric=False)  # n above the width
    assert _gram_form_pays(1000, widths, widths, symmetric=True)
    assert not _gram_form_pays(3000, widths, widths, symmetric=True)  # more products
    assert not _gram_form_pays(1500, widths, widths, symmetric=False)  # 66 n x n: > 1 GiB
    assert not _gram_form_pays(300, [40, 40, 60], [50, 40], symmetric=False)
    assert _gram_form_pays(30, [40, 40, 60], [50, 40], symmetric=False)
