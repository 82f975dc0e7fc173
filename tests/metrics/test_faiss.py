"""Approximate neighbours through faiss (the optional extra): recall, exact distances, the
measures that take them (equal to the exact path where the graph's recall is 1), errors."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from geomalign import metrics
from geomalign.metrics import cknna, gride_scaling, intrinsic_dimension, lcs_knn, mutual_knn
from geomalign.metrics._id_resampled import resampled_intrinsic_dimension
from geomalign.metrics._neighbors import knn
from geomalign.metrics.cknna import resampled_cknna, shuffled_cknna


def _cloud(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 6)) @ rng.standard_normal((6, 24))).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "inner_product"])
def test_hnsw_neighbours_recall_and_exact_distances(metric):
    pytest.importorskip("faiss")
    X = _cloud()
    exact = knn(X, k=10, metric=metric)
    approx = knn(X, k=10, metric=metric, neighbors="faiss-hnsw")
    assert approx.indices.shape == (600, 10)
    assert not (approx.indices == np.arange(600)[:, None]).any()  # never a row itself
    pairs = zip(approx.indices, exact.indices, strict=True)
    recall = np.mean([len(set(a) & set(b)) for a, b in pairs]) / 10
    assert recall >= 0.99
    assert (np.diff(approx.distances, axis=1) >= 0).all()
    same = approx.indices == exact.indices  # the same neighbour at the same rank: same distance
    np.testing.assert_allclose(approx.distances[same], exact.distances[same], rtol=1e-12)


def test_mutual_knn_through_hnsw_is_close_to_exact():
    pytest.importorskip("faiss")
    X, Y = _cloud(seed=1), _cloud(seed=1) + 0.3 * _cloud(seed=2)
    exact = mutual_knn(X, Y, k=10)
    assert mutual_knn(X, Y, k=10, neighbors="faiss-hnsw") == pytest.approx(exact, abs=0.01)


def test_unknown_search_is_refused():
    with pytest.raises(ValueError, match="neighbors must be one of"):
        knn(_cloud(50), k=3, neighbors="annoy")


def test_missing_faiss_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'geomalign\[faiss\]'"):
        knn(_cloud(50), k=3, neighbors="faiss-hnsw")


def _same_lists(X: np.ndarray, k: int, metric: str) -> None:
    """The precondition of the comparisons below: HNSW recall is 1 on these rows."""
    exact = knn(X, k=k, metric=metric)
    approx = knn(X, k=k, metric=metric, neighbors="faiss-hnsw")
    np.testing.assert_array_equal(approx.indices, exact.indices)


@pytest.mark.parametrize("metric", ["cosine", "inner_product"])
def test_cknna_through_hnsw_equals_exact_where_recall_is_one(metric):
    pytest.importorskip("faiss")
    X, Y = _cloud(seed=3), _cloud(seed=3) + 0.5 * _cloud(seed=4)
    for V in (X, Y):
        _same_lists(V, 10, metric)
    for unbiased in (True, False):
        exact = cknna(X, Y, k=10, metric=metric, unbiased=unbiased)
        approx = cknna(X, Y, k=10, metric=metric, unbiased=unbiased, neighbors="faiss-hnsw")
        assert approx == pytest.approx(exact, rel=1e-12, abs=1e-12)
    perms = np.random.default_rng(0).permuted(np.tile(np.arange(600), (3, 1)), axis=1)
    np.testing.assert_allclose(
        shuffled_cknna(X, Y, k=10, metric=metric, neighbors="faiss-hnsw")(perms),
        shuffled_cknna(X, Y, k=10, metric=metric)(perms),
        rtol=1e-12,
    )


def _half_samples(n: int, count: int = 4) -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.sort([rng.choice(n, n // 2, replace=False) for _ in range(count)], axis=1)


def test_resampled_cknna_through_hnsw_equals_exact():
    pytest.importorskip("faiss")
    X, Y = _cloud(seed=6), _cloud(seed=6) + 0.5 * _cloud(seed=7)
    for V in (X, Y):
        _same_lists(V, 62, "cosine")  # the half-sample lists: 3 k + 32
    rows = _half_samples(600)
    np.testing.assert_allclose(
        resampled_cknna(X, Y, k=10, neighbors="faiss-hnsw")(rows),
        resampled_cknna(X, Y, k=10)(rows),
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    ("method", "options", "k"),
    [("twonn", {}, 2), ("gride", {"n1": 8}, 16), ("mle", {"n_neighbors": 12}, 12)],
)
def test_intrinsic_dimension_through_hnsw_equals_exact(method, options, k):
    pytest.importorskip("faiss")
    X = _cloud(seed=8)
    _same_lists(X, k, "euclidean")
    exact = intrinsic_dimension(X, method=method, **options)
    approx = intrinsic_dimension(X, method=method, neighbors="faiss-hnsw", **options)
    assert approx.dimension == pytest.approx(exact.dimension, rel=1e-12)
    assert (approx.n_used, approx.params) == (exact.n_used, exact.params)
    _same_lists(X, 3 * k + 32, "euclidean")  # the half-sample lists
    rows = _half_samples(600)
    np.testing.assert_allclose(
        resampled_intrinsic_dimension(X, method=method, neighbors="faiss-hnsw", **options)(rows),
        resampled_intrinsic_dimension(X, method=method, **options)(rows),
        rtol=1e-12,
    )


def test_gride_scaling_and_ordered_lists_through_hnsw_equal_exact():
    pytest.importorskip("faiss")
    X = _cloud(seed=9)
    _same_lists(X, 32, "euclidean")
    exact, approx = (
        gride_scaling(X, range_max=32),
        gride_scaling(X, range_max=32, neighbors="faiss-hnsw"),
    )
    np.testing.assert_allclose(approx.dimensions, exact.dimensions, rtol=1e-12)
    Y = X + 0.5 * _cloud(seed=10)
    _same_lists(Y, 10, "cosine")
    assert lcs_knn(X, Y, k=10, neighbors="faiss-hnsw") == lcs_knn(X, Y, k=10)


def test_registry_measure_with_the_hnsw_option():
    pytest.importorskip("faiss")
    X = _cloud(seed=11)
    twonn = metrics.get("id-twonn")
    hnsw = dataclasses.replace(
        twonn, name="id-twonn-hnsw", params={**twonn.params, "neighbors": "faiss-hnsw"}
    )
    assert hnsw(X) == pytest.approx(twonn(X), rel=1e-12)


def test_missing_faiss_is_named_by_every_neighbour_measure(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    X, Y = _cloud(50, seed=12), _cloud(50, seed=13)
    calls = [
        lambda: cknna(X, Y, k=5, neighbors="faiss-hnsw"),
        lambda: intrinsic_dimension(X, method="twonn", neighbors="faiss-hnsw"),
        lambda: gride_scaling(X, range_max=8, neighbors="faiss-hnsw"),
    ]
    for call in calls:
        with pytest.raises(ImportError, match=r"pip install 'geomalign\[faiss\]'"):
            call()


def test_search_options_are_checked_by_the_dimensions():
    X = _cloud(50, seed=14)
    with pytest.raises(ValueError, match="neighbors must be one of"):
        intrinsic_dimension(X, method="gride", n1=4, neighbors="annoy")
    with pytest.raises(ValueError, match="neighbors applies to the neighbour-based methods"):
        intrinsic_dimension(X, method="pr", neighbors="faiss-hnsw")
