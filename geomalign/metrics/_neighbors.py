"""k-nearest neighbours of the rows of a representation matrix, exact or approximate.

Candidates come from blocked exact products (:mod:`~geomalign.metrics._exact_search`) or from a
faiss HNSW graph (:mod:`~geomalign.metrics._faiss_search`); either way their distances are then
recomputed from the rows (:mod:`~geomalign.metrics._neighbour_distances`), so that near
neighbours keep their precision and exact duplicates come out at distance exactly 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from geomalign.metrics._arrays import (
    as_tensor,
    block_rows,
    divide_by_power_of_two,
    peak_exponent,
    resolve_device,
)
from geomalign.metrics._errors import UndefinedMeasureError
from geomalign.metrics._exact_search import block_scores, exact_candidates
from geomalign.metrics._faiss_search import hnsw_candidates
from geomalign.metrics._memo import Memo, digest
from geomalign.metrics._neighbour_distances import (
    exact_distances,
    minus_inner_products,
    row_sq_norms,
)

__all__ = ["Neighbors", "check_k", "check_k_informative", "knn", "neighbour_ranks"]

METRICS = ("euclidean", "cosine", "inner_product")
#: How neighbours are searched: exactly, or approximately through faiss.
NEIGHBOR_SEARCHES = ("exact", "faiss-hnsw")
# The latest searches, by the rows' contents and the search settings: an analysis searches the
# neighbours of one layer for its value, its permutation null and its resamples, and again in
# every analysis that reads that layer.
_searches: Memo[Neighbors] = Memo(
    256 * 2**20,
    size=lambda found: found.indices.nbytes + found.distances.nbytes,
    copy=lambda found: replace(
        found, indices=found.indices.copy(), distances=found.distances.copy()
    ),
)


@dataclass(frozen=True)
class Neighbors:
    """The k nearest neighbours of every row of a representation matrix.

    Attributes
    ----------
    indices : numpy.ndarray of shape (n_samples, k), dtype int64
        Row indices of the neighbours, nearest first; a row never lists itself (exact duplicates
        of it do appear, at distance 0).
    distances : numpy.ndarray of shape (n_samples, k), dtype float64
        Matching distances, ascending along each row: Euclidean distances, minus the inner
        products (``"inner_product"``, largest inner product first), or cosine distances
        ``1 - cos(x_i, x_j)``.
    metric : {"euclidean", "cosine", "inner_product"}
        The metric the neighbours were found with.
    """

    indices: np.ndarray
    distances: np.ndarray
    metric: str


def _prepare(
    X: np.ndarray | torch.Tensor, metric: str, device: str | torch.device | None, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """``X / 2**e`` as a tensor, its float32 version, the float32 score scale, the inverse norms
    (cosine), and ``e``: the power of two (see ``unit_scaled``) that keeps float32 products of
    the rows from overflowing or underflowing."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    Xt = as_tensor(X, resolve_device(X, device))
    low, high = torch.aminmax(Xt, dim=0)
    if torch.equal(low, high):
        raise UndefinedMeasureError(
            f"nearest neighbours are undefined: all {Xt.shape[0]} rows of {name} are identical "
            "(every distance is 0, every neighbour a tie)."
        )
    exponent = peak_exponent(max(-float(low.min()), float(high.max())))
    Xt = divide_by_power_of_two(Xt, exponent)
    Xc = Xt if Xt.dtype == torch.float32 else Xt.to(torch.float32)
    sq = row_sq_norms(Xt)
    if metric != "cosine":
        return Xt, Xc, sq.to(torch.float32), None, exponent
    zero = torch.nonzero(sq == 0).flatten().cpu().numpy()
    if zero.size:
        listed = ", ".join(str(int(r)) for r in zero[:10])
        raise UndefinedMeasureError(
            f"cosine distance is undefined for all-zero rows; {name} has {zero.size} of them "
            f"(rows [{listed}{', ...' if zero.size > 10 else ''}])."
        )
    inv_norms = sq.rsqrt()
    return Xt, Xc, inv_norms.to(torch.float32), inv_norms.to(Xt.dtype), exponent


def check_k(k: int, n_samples: int, *, name: str = "k", what: str = "X") -> None:
    """Raise ValueError unless ``1 <= k < n_samples`` (self is never a neighbour).

    ``k >= n_samples`` raises :class:`UndefinedMeasureError` (a ValueError): the rows are too
    few for that k, so an analysis reports the layer as undefined instead of stopping.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {k!r} of type {type(k).__name__}.")
    if not 1 <= k < n_samples:
        error = ValueError if k < 1 else UndefinedMeasureError
        raise error(
            f"{name} must satisfy 1 <= {name} < n_samples; got {name}={k} with n_samples="
            f"{n_samples} in {what} (a sample is not its own neighbour)."
        )


def check_k_informative(k: int, n_samples: int, what: str) -> None:
    """:func:`check_k`, and :class:`UndefinedMeasureError` if ``k = n_samples - 1``: every other
    sample is then a neighbour of every sample, so a neighbourhood comparison (``what``) is
    constant."""
    check_k(k, n_samples, what="X and Y")
    if k == n_samples - 1:
        raise UndefinedMeasureError(
            f"{what} needs k <= n_samples - 2; got k={k} with n_samples={n_samples}: every other "
            "sample is then a neighbour of each sample, so the score is the same whatever the data."
        )


def knn(
    X: np.ndarray | torch.Tensor,
    *,
    k: int,
    metric: str = "euclidean",
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    name: str = "X",
    neighbors: str = "exact",
) -> Neighbors:
    """The k nearest neighbours of every row of ``X`` among the other rows (exact by default).

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor of shape (n_samples, n_features)
        Representations as returned by :func:`geomalign._validation.check_representations`
        (2-D, finite, floating point); not validated again here.
    k : int
        Number of neighbours, ``1 <= k < n_samples``.
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Euclidean distance, cosine distance ``1 - cos`` (rows must be non-zero), or the raw
        inner product of un-normalised rows, largest first (platonic-rep's neighbours when its
        features are not normalised).
    working_memory : float, optional
        Budget in MiB for one block of products (default 1024). The largest temporary is one
        block of ``rows x n_samples`` float32 values.
    device : str or torch.device, optional
        Where to compute; default: the device of ``X`` if it is a tensor, else the CPU.
    name : str, default="X"
        What to call ``X`` in error messages.
    neighbors : {"exact", "faiss-hnsw"}, default="exact"
        Exact search, or approximate candidates from a faiss HNSW graph (the optional extra
        ``faiss``; on the CPU), for N in the millions where the n^2 products of exact search
        are too slow; the listed distances are exact either way.

    Returns
    -------
    Neighbors
        ``indices`` (int64) and ascending ``distances`` (float64), both (n_samples, k), on the CPU.

    Raises
    ------
    UndefinedMeasureError
        If all rows of ``X`` are identical, or (cosine) some rows are all zero.

    Notes
    -----
    Candidates are ranked by float32 products; ties and near-ties closer than float32 resolution
    (about 1e-7 of the squared norms) may be ordered either way. The returned distances are
    recomputed from the rows with float64 accumulation.
    """
    n = X.shape[0]
    check_k(k, n)
    if neighbors not in NEIGHBOR_SEARCHES:
        raise ValueError(f"neighbors must be one of {NEIGHBOR_SEARCHES}; got {neighbors!r}.")
    settings = (k, metric, working_memory, str(device), neighbors, torch.get_num_threads())
    key = digest(X, settings)
    found = _searches.get(key)
    if found is not None:
        return found
    Xt, Xc, scale, inv_norms, exponent = _prepare(X, metric, device, name)
    if neighbors == "faiss-hnsw":
        indices = hnsw_candidates(Xc, k, metric, inv_norms)
    else:
        indices = exact_candidates(Xc, k, metric, scale, working_memory)
    del Xc
    return _searches.put(key, listed_neighbours(Xt, indices, metric, inv_norms, exponent))


def listed_neighbours(
    Xt: torch.Tensor,
    indices: torch.Tensor,
    metric: str,
    inv_norms: torch.Tensor | None,
    exponent: int,
) -> Neighbors:
    """The neighbours ``indices`` (n, k) of the rows of ``Xt`` (as :func:`_prepare` returns them)
    with their distances recomputed from the rows, ascending, ties broken by index."""
    if metric == "inner_product":
        dist = minus_inner_products(Xt, indices)
    else:
        dist = exact_distances(Xt, indices, metric, inv_norms)
    if metric != "cosine" and exponent:  # back to the units of X (exact)
        power = exponent if metric == "euclidean" else 2 * exponent
        dist = torch.ldexp(dist, torch.tensor(power, device=dist.device))
    # ascending distance, ties broken by index
    indices, order = torch.sort(indices, dim=1)
    dist = torch.gather(dist, 1, order)
    dist, order = torch.sort(dist, dim=1, stable=True)
    indices = torch.gather(indices, 1, order)
    return Neighbors(indices=indices.cpu().numpy(), distances=dist.cpu().numpy(), metric=metric)


def neighbour_ranks(
    X: np.ndarray | torch.Tensor,
    targets: np.ndarray,
    *,
    metric: str = "euclidean",
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    name: str = "X",
) -> np.ndarray:
    """Rank of ``targets[i, j]`` among the neighbours of row i of ``X`` (1 = nearest).

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor of shape (n_samples, n_features)
        Checked representations, as for :func:`knn`.
    targets : numpy.ndarray of shape (n_samples, m), int
        Row indices, none equal to its own row number.
    metric, working_memory, device, name
        As for :func:`knn`.

    Returns
    -------
    numpy.ndarray of shape (n_samples, m), int64
        ``1 +`` the number of other rows strictly nearer to row i than the target (ties share
        the best rank), by float32 scores; each row's scores are scanned once, in blocks.
    """
    Xt, Xc, scale, _, _ = _prepare(X, metric, device, name)
    n = Xt.shape[0]
    tgt = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=Xt.device)
    out = torch.empty(tgt.shape, dtype=torch.int64, device=Xt.device)
    rows = min(block_rows(n, 8, working_memory), n)
    buffer = torch.empty(rows * n, dtype=torch.float32, device=Xt.device)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        S = block_scores(Xc, scale, metric, start, stop, 0, buffer)
        S[:, start:stop].diagonal().fill_(math.inf)
        threshold = torch.gather(S, 1, tgt[start:stop])
        for j in range(tgt.shape[1]):
            out[start:stop, j] = (S < threshold[:, j : j + 1]).sum(dim=1) + 1
    return out.cpu().numpy()
