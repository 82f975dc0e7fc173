"""Approximate neighbours through faiss (the optional extra): recall, exact distances, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from geomalign.metrics import mutual_knn
from geomalign.metrics._neighbors import knn


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
