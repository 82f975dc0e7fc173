"""Approximate nearest-neighbour candidates through faiss (the optional extra ``faiss``).

An HNSW graph (Malkov and Yashunin 2018) over the float32 rows, searched for ``k + 1`` entries
per row with a wide beam; the row itself is dropped from its list, and the caller recomputes the
listed distances from the rows in float64 as for exact neighbours. Building the graph costs about
``n log n`` distance evaluations instead of the ``n^2`` of exact search, which is what makes
N = 1,000,000 reachable; the price is recall: a few true neighbours may be missed
(``benchmarks/scale_bench.py`` measures it against exact search).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = [
    "EF_CONSTRUCTION",
    "EF_SEARCH",
    "HNSW_LINKS",
    "hnsw_candidates",
    "hnsw_index",
    "import_faiss",
    "search_index",
    "without_self",
]

#: Links per node of the graph (faiss's ``M``) and beam widths of construction and search
#: (``efConstruction``, ``efSearch``; the search beam is at least twice the list length).
HNSW_LINKS = 32
EF_CONSTRUCTION = 200
EF_SEARCH = 256
# Rows searched per call (bounds the (rows, k + 1) result buffers).
_SEARCH_ROWS = 65536


def import_faiss() -> Any:
    """The faiss module, or ImportError saying how to install it."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "neighbors='faiss-hnsw' needs faiss: pip install 'geomalign[faiss]' (faiss-cpu)."
        ) from error
    return faiss


def hnsw_index(
    points: np.ndarray,
    metric: str,
    *,
    links: int = HNSW_LINKS,
    ef_construction: int = EF_CONSTRUCTION,
) -> Any:
    """A faiss HNSW graph over the C-contiguous float32 ``points`` (n, d): inner-product search
    for ``metric="inner_product"``, L2 otherwise (cosine: the caller normalises the rows)."""
    faiss = import_faiss()
    kind = faiss.METRIC_INNER_PRODUCT if metric == "inner_product" else faiss.METRIC_L2
    faiss.omp_set_num_threads(torch.get_num_threads())
    index = faiss.IndexHNSWFlat(points.shape[1], links, kind)
    index.hnsw.efConstruction = ef_construction
    index.add(points)
    return index


def search_index(index: Any, points: np.ndarray, wanted: int, *, ef_search: int) -> np.ndarray:
    """The ``wanted`` entries (n, wanted) nearest to each row of ``points`` in ``index``, the
    row itself included, searched with a beam of ``max(ef_search, 2 * wanted)``."""
    n = points.shape[0]
    index.hnsw.efSearch = max(ef_search, 2 * wanted)
    found = np.empty((n, wanted), dtype=np.int64)
    for start in range(0, n, _SEARCH_ROWS):
        _, found[start : start + _SEARCH_ROWS] = index.search(
            points[start : start + _SEARCH_ROWS], wanted
        )
    if (found < 0).any():
        raise RuntimeError(
            f"the HNSW search returned fewer than {wanted} neighbours for some rows (n={n}); "
            "use neighbors='exact'."
        )
    return found


def without_self(found: np.ndarray) -> np.ndarray:
    """The lists ``found`` (n, m) of rows searched in their own index, each row dropped from its
    list (a row not listed, duplicates ahead of it, loses its last entry): shape (n, m - 1)."""
    n, m = found.shape
    own = found == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True
    return found[~own].reshape(n, m - 1)


def hnsw_candidates(
    Xc: torch.Tensor, k: int, metric: str, inv_norms: torch.Tensor | None
) -> torch.Tensor:
    """Approximate k nearest neighbours (n, k) of each row of float32 ``Xc``, self excluded.

    Cosine neighbours are searched among the L2-normalised rows (``inv_norms``: the inverse row
    norms), inner-product neighbours with faiss's inner-product metric, Euclidean ones by L2.
    """
    data = Xc.detach().to("cpu", torch.float32)
    if metric == "cosine":
        assert inv_norms is not None
        data = data * inv_norms.to("cpu", torch.float32)[:, None]
    points = np.ascontiguousarray(data.numpy())
    index = hnsw_index(points, metric)
    found = search_index(index, points, min(k + 1, points.shape[0]), ef_search=EF_SEARCH)
    return torch.from_numpy(without_self(found)).to(Xc.device)
