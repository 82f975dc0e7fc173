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

__all__ = ["HNSW_LINKS", "hnsw_candidates", "import_faiss"]

#: Links per node of the graph (faiss's ``M``) and beam widths of construction and search.
HNSW_LINKS = 32
_EF_CONSTRUCTION = 200
_EF_SEARCH = 256
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


def hnsw_candidates(
    Xc: torch.Tensor, k: int, metric: str, inv_norms: torch.Tensor | None
) -> torch.Tensor:
    """Approximate k nearest neighbours (n, k) of each row of float32 ``Xc``, self excluded.

    Cosine neighbours are searched among the L2-normalised rows (``inv_norms``: the inverse row
    norms), inner-product neighbours with faiss's inner-product metric, Euclidean ones by L2.
    """
    faiss = import_faiss()
    data = Xc.detach().to("cpu", torch.float32)
    if metric == "cosine":
        assert inv_norms is not None
        data = data * inv_norms.to("cpu", torch.float32)[:, None]
    points = np.ascontiguousarray(data.numpy())
    n, d = points.shape
    kind = faiss.METRIC_INNER_PRODUCT if metric == "inner_product" else faiss.METRIC_L2
    faiss.omp_set_num_threads(torch.get_num_threads())
    index = faiss.IndexHNSWFlat(d, HNSW_LINKS, kind)
    index.hnsw.efConstruction = _EF_CONSTRUCTION
    index.add(points)
    index.hnsw.efSearch = max(_EF_SEARCH, 2 * (k + 1))
    wanted = min(k + 1, n)
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
    own = found == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True  # a row not listed (duplicates ahead of it): drop the last
    return torch.from_numpy(found[~own].reshape(n, wanted - 1)).to(Xc.device)
