"""Intrinsic dimension: analytic cases, DADApy reference values, scikit-dimension, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skdim
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import special_ortho_group

from geomalign.metrics import UndefinedMeasureError
from geomalign.metrics.intrinsic import gride_scaling, intrinsic_dimension

DATA = Path(__file__).parent.parent / "data"
REFERENCE_CASES = ("linear10_in128", "sphere4_in64", "dup_linear6_in32")


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "reference_inputs.npz") as inputs:
        arrays = {name: inputs[name] for name in REFERENCE_CASES}
    values = json.loads((DATA / "reference_values.json").read_text())["cases"]
    return arrays, values


def _embed(Z: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Map the rows of Z isometrically into ``dim`` dimensions (random orthonormal columns)."""
    Q, _ = np.linalg.qr(rng.normal(size=(dim, Z.shape[1])))
    return Z @ Q.T


def _subspace(d: int, n: int = 1000, dim: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _embed(rng.normal(size=(n, d)), dim, rng).astype(np.float32)


def _sphere(d: int, n: int = 1500, dim: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, d + 1))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    return _embed(Z, dim, rng).astype(np.float32)


def _reference_call(X, case, fn, **kwargs):
    if case == "dup_linear6_in32":
        with pytest.warns(UserWarning, match="300 of 1500 rows of X are duplicates"):
            return fn(X, **kwargs)
    return fn(X, **kwargs)


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_twonn_matches_dadapy(reference, case):
    arrays, values = reference
    ref = values[case]
    ml = _reference_call(arrays[case], case, intrinsic_dimension, method="twonn")
    linear = _reference_call(arrays[case], case, intrinsic_dimension, fit="linear")
    assert ml.dimension == pytest.approx(ref["twonn_ml"]["id"], rel=1e-6)
    assert linear.dimension == pytest.approx(ref["twonn_base_mu_fraction_0.9"]["id"], rel=1e-6)
    assert ml.n_used == linear.n_used == ref["n_after_removing_identical"]
    assert ml.n_duplicates == ref["shape"][0] - ref["n_after_removing_identical"]
    assert ml.error == pytest.approx(ml.dimension / np.sqrt(ml.n_used))
    assert linear.error is None
    assert linear.params == {"fit": "linear", "discard_fraction": 0.1, "duplicate_rtol": 1e-3}


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_gride_scaling_matches_dadapy(reference, case):
    arrays, values = reference
    ref = values[case]["gride_range_max_64"]
    result = _reference_call(arrays[case], case, gride_scaling, range_max=64)
    np.testing.assert_array_equal(result.n1, ref["n1"])
    np.testing.assert_array_equal(result.n2, 2 * np.asarray(ref["n1"]))
    np.testing.assert_allclose(result.dimensions, ref["id"], rtol=1e-6)
    np.testing.assert_allclose(result.errors, ref["err"], rtol=1e-6)
    np.testing.assert_allclose(result.scales, ref["scale"], rtol=1e-6)
    assert result.n_used == values[case]["n_after_removing_identical"]
    # the single-scale estimate is the same computation
    single = _reference_call(arrays[case], case, intrinsic_dimension, method="gride", n1=16)
    assert single.dimension == pytest.approx(ref["id"][4], rel=1e-6)
    assert single.error == pytest.approx(ref["err"][4], rel=1e-6)


@pytest.mark.parametrize("d", [2, 6])
@pytest.mark.parametrize("method", ["twonn", "gride", "mle", "pr"])
def test_linear_subspace_in_500_dims(d, method):
    result = intrinsic_dimension(_subspace(d), method=method)
    assert result.dimension == pytest.approx(d, rel=0.1)
    assert result.n_used == 1000
    assert result.n_duplicates == 0


@pytest.mark.parametrize("d", [3, 8])
@pytest.mark.parametrize("method", ["twonn", "gride", "mle"])
def test_sphere_in_500_dims(d, method):
    kwargs = {"n1": 4} if method == "gride" else {}
    result = intrinsic_dimension(_sphere(d), method=method, **kwargs)
    assert result.dimension == pytest.approx(d, rel=0.12)


@pytest.mark.parametrize("d", [3, 8])
def test_participation_ratio_of_a_sphere_is_its_ambient_dimension(d):
    # uniform on S^d in R^(d + 1) has covariance I / (d + 1): every direction counts
    result = intrinsic_dimension(_sphere(d, n=4000, dim=100), method="pr")
    assert result.dimension == pytest.approx(d + 1, rel=0.03)
    assert result.error is None


@pytest.mark.parametrize("shape", [(300, 20), (20, 300)])
def test_participation_ratio_equals_eigenvalue_formula(shape):
    rng = np.random.default_rng(1)
    X = rng.normal(size=shape) * rng.uniform(0.1, 3.0, size=shape[1])
    eig = np.linalg.eigvalsh(np.cov(X, rowvar=False))
    expected = eig.sum() ** 2 / (eig**2).sum()
    assert intrinsic_dimension(X, method="pr").dimension == pytest.approx(expected, rel=1e-10)
    small_blocks = intrinsic_dimension(X, method="pr", working_memory=0.01)
    assert small_blocks.dimension == pytest.approx(expected, rel=1e-10)
    Q = special_ortho_group.rvs(shape[1], random_state=2)
    moved = intrinsic_dimension(3.0 * X @ Q + 5.0, method="pr")
    assert moved.dimension == pytest.approx(expected, rel=1e-8)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(3, 30), d=st.integers(1, 12))
def test_participation_ratio_bounds_and_scale_invariance(seed, n, d):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.01, 10.0, size=d)
    pr = intrinsic_dimension(X, method="pr").dimension
    assert 1.0 - 1e-9 <= pr <= min(n - 1, d) + 1e-9
    assert intrinsic_dimension(1e3 * X - 7.0, method="pr").dimension == pytest.approx(pr)


def test_twonn_and_mle_agree_with_scikit_dimension():
    X = _sphere(5, n=1500, dim=40, seed=3).astype(np.float64)
    assert intrinsic_dimension(X, fit="linear").dimension == pytest.approx(
        skdim.id.TwoNN().fit(X).dimension_, rel=1e-9
    )
    with np.errstate(divide="ignore"):  # skdim also forms its unused fit axis, log(1 - 1)
        unbiased_ml = skdim.id.TwoNN(method="mle", discard_fraction=0.0).fit(X).dimension_
    assert intrinsic_dimension(X).dimension == pytest.approx(unbiased_ml, rel=1e-9)
    for k in (10, 20):
        ours = intrinsic_dimension(X, method="mle", n_neighbors=k).dimension
        assert ours == pytest.approx(skdim.id.MLE().fit(X, n_neighbors=k).dimension_, rel=1e-9)


def test_gride_scaling_starts_at_twonn_and_stops_below_n():
    X = _subspace(4, n=40, dim=30)
    result = gride_scaling(X, range_max=64)
    np.testing.assert_array_equal(result.n1, [1, 2, 4, 8, 16])  # n2 = 32 <= 39 neighbours
    assert result.dimensions[0] == pytest.approx(intrinsic_dimension(X).dimension, rel=1e-9)
    assert np.all(np.diff(result.scales) > 0)


def _with_near_duplicates(X: np.ndarray, n_copies: int, jitter: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.choice(X.shape[0], size=n_copies, replace=False)
    copies = X[rows] + jitter * rng.normal(size=(n_copies, X.shape[1])).astype(X.dtype)
    return np.concatenate([X, copies])


@pytest.mark.parametrize(("method", "bias"), [("twonn", 0.8), ("gride", None), ("mle", 0.9)])
def test_near_duplicates_are_dropped_with_a_warning(method, bias):
    X = _sphere(4, n=1000, dim=64, seed=4)
    clean = intrinsic_dimension(X, method=method)
    noisy = _with_near_duplicates(X, 50, jitter=1e-6, seed=5)
    with pytest.warns(UserWarning, match=r"50 of 1050 rows of X are duplicates or near-dup"):
        result = intrinsic_dimension(noisy, method=method)
    assert result.n_duplicates == 50
    assert result.n_used == 1000
    assert result.dimension == pytest.approx(clean.dimension, rel=1e-9)
    # with exact matching only, the near-duplicates stay and pull the small-scale estimates
    # down (GRIDE at n1=16 hardly notices one extra close neighbour)
    kept = intrinsic_dimension(noisy, method=method, duplicate_rtol=0.0)
    assert kept.n_duplicates == 0
    if bias is not None:
        assert kept.dimension < bias * clean.dimension


def test_float16_rows_with_repeats_and_groups():
    X = _sphere(3, n=800, dim=32, seed=6).astype(np.float16)
    # a group of 5 identical rows and 20 plain repeats
    X = np.concatenate([X, np.repeat(X[:1], 4, axis=0), X[100:120]])
    with pytest.warns(UserWarning, match="24 of 824 rows"):
        result = gride_scaling(X, range_max=16)
    assert result.n_used == 800
    assert np.all(np.isfinite(result.dimensions))


def test_torch_input_and_small_blocks_give_the_same_result():
    X = _sphere(4, n=600, dim=48, seed=7)
    expected = gride_scaling(X, range_max=32)
    from_torch = gride_scaling(torch.from_numpy(X), range_max=32, working_memory=0.05)
    np.testing.assert_allclose(from_torch.dimensions, expected.dimensions, rtol=1e-12)
    np.testing.assert_allclose(from_torch.scales, expected.scales, rtol=1e-12)
    pr = intrinsic_dimension(torch.from_numpy(X), method="pr").dimension
    assert pr == pytest.approx(intrinsic_dimension(X, method="pr").dimension, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "n", "match"),
    [
        ({"method": "gride", "n1": 16}, 32, r"at least 33 samples .*GRIDE with n1=16"),
        ({"method": "mle", "n_neighbors": 50}, 50, r"at least 51 samples .*n_neighbors=50"),
        ({"method": "twonn"}, 2, r"at least 3 samples"),
        (
            {"method": "pr"},
            2,
            r"participation ratio is undefined on 2 samples; it needs at least 3",
        ),
        ({"method": "lid"}, 50, r"method must be one of"),
        ({"method": "gride", "fit": "linear"}, 50, r"fit applies to method='twonn' only"),
        ({"method": "twonn", "n1": 4}, 50, r"n1 applies to method='gride' only"),
        ({"discard_fraction": 0.2}, 50, r"discard_fraction applies to .*fit='linear'"),
        ({"fit": "linear", "discard_fraction": 1.0}, 50, r"discard_fraction must be in"),
        ({"method": "gride", "n1": 0}, 50, r"n1 must be an integer >= 1"),
        ({"duplicate_rtol": -1.0}, 50, r"duplicate_rtol must be >= 0"),
    ],
)
def test_bad_options_raise(kwargs, n, match):
    X = np.random.default_rng(0).normal(size=(n, 5))
    with pytest.raises(ValueError, match=match):
        intrinsic_dimension(X, **kwargs)


def test_bad_arrays_raise():
    X = np.random.default_rng(0).normal(size=(50, 5))
    X[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"finite values; rows \[7\]"):
        intrinsic_dimension(X)
    with pytest.raises(ValueError, match="2-D array"):
        gride_scaling(np.ones(10))
    with pytest.raises(ValueError, match="range_max must be an integer >= 2"):
        gride_scaling(np.ones((10, 2)), range_max=1)
    with pytest.raises(ValueError, match="undefined for X with zero variance"):
        intrinsic_dimension(np.ones((5, 3)), method="pr")
    with pytest.raises(UndefinedMeasureError, match="all 20 rows of X are identical"):
        intrinsic_dimension(np.ones((20, 3)))
    almost = np.ones((20, 3))
    almost[0] = 2.0
    with pytest.raises(UndefinedMeasureError, match=r"at least 3 distinct samples.*18 are dup"):
        intrinsic_dimension(almost)
