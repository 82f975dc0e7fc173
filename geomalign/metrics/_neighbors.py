"""Exact k-nearest neighbours by blocked matrix products.

The N x N similarity matrix is never formed: rows are processed in blocks of at most
``working_memory`` MiB, and the symmetry of X X^T is used so that each block is multiplied only
with itself and the rows after it. One product ``X[block] @ X[block_start:].T`` serves twice: a
top-k along its rows gives the block's candidates among later rows, and a top-k along its columns
gives the later rows' candidates inside the block. A running (n, k) best list is merged after each
block. The column-wise top-k over a block's few rows is the expensive selection, so it is done in
two stages: the block's rows are taken in groups, and a column's k smallest entries always lie in
the k groups with the smallest minima, so only those groups' entries are ranked.

Candidates are selected from float32 products; the k selected distances are then recomputed from the
rows themselves (a difference of rows, squared and summed with float64 accumulation), so that near
neighbours keep their precision and exact duplicates come out at distance exactly 0.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
from geomalign.metrics._faiss_search import hnsw_candidates
from geomalign.metrics._search_memo import SearchMemo

__all__ = ["Neighbors", "check_k", "check_k_informative", "knn", "neighbour_ranks"]

METRICS = ("euclidean", "cosine", "inner_product")
#: How neighbours are searched: exactly, or approximately through faiss.
NEIGHBOR_SEARCHES = ("exact", "faiss-hnsw")
# Blocks are kept small enough that the symmetric scheme skips most of the lower triangle
# (with m blocks it computes (m + 1) / (2 m) of X X^T), but large enough for efficient products.
_TARGET_BLOCKS = 8
_MIN_BLOCK_ROWS = 512
# Bytes of the gathered rows handled at once when recomputing distances (cache sized).
_RECOMPUTE_BYTES = 2 * 2**20
# The latest searches, by the rows' contents and the search settings: an analysis searches the
# neighbours of one layer for its value, its permutation null and its resamples, and again in
# every analysis that reads that layer.
_searches = SearchMemo(max_bytes=256 * 2**20)


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


def _row_sq_norms(X: torch.Tensor) -> torch.Tensor:
    """Squared row norms accumulated in float64 (float32 reductions drift on long rows).

    On the CPU, single-threaded NumPy over cache-sized chunks beats torch's parallel kernels
    for this memory-bound pass (and does not degrade when the cores are shared).
    """
    chunk = max(1, _RECOMPUTE_BYTES // (X.shape[1] * X.element_size()))
    if X.device.type == "cpu":
        Xn = X.numpy()
        sums = np.empty(X.shape[0], dtype=np.float64)
        for start in range(0, X.shape[0], chunk):
            sums[start : start + chunk] = np.square(Xn[start : start + chunk]).sum(
                axis=1, dtype=np.float64
            )
        return torch.from_numpy(sums)
    out = torch.empty(X.shape[0], dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[0], 64 * chunk):
        block = X[start : start + 64 * chunk]
        out[start : start + 64 * chunk] = block.square().sum(dim=1, dtype=torch.float64)
    return out


def _merge(
    best_v: torch.Tensor, best_i: torch.Tensor, v: torch.Tensor, i: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the k smallest of the running best list and new candidates, row by row."""
    cat_v = torch.cat([best_v, v], dim=1)
    cat_i = torch.cat([best_i, i], dim=1)
    top_v, pos = torch.topk(cat_v, k, dim=1, largest=False, sorted=False)
    return top_v, torch.gather(cat_i, 1, pos)


def _block_scores(
    Xc: torch.Tensor,
    scale: torch.Tensor,
    metric: str,
    start: int,
    stop: int,
    col_start: int,
    buffer: torch.Tensor,
) -> torch.Tensor:
    """Float32 scores of rows ``start:stop`` against rows ``col_start:``, smaller is nearer.

    The score is the squared Euclidean distance, or minus the cosine similarity; ``scale`` holds
    the squared row norms (Euclidean) or the inverse row norms (cosine), in float32. The scores
    are written into the front of the flat ``buffer``, reused across blocks: a fresh block of
    this size would cost a page fault per 4 KiB.
    """
    S = buffer[: (stop - start) * (Xc.shape[0] - col_start)].view(stop - start, -1)
    if metric == "euclidean":
        torch.addmm(scale[col_start:], Xc[start:stop], Xc[col_start:].T, alpha=-2.0, out=S)
        return S.add_(scale[start:stop, None])
    if metric == "inner_product":
        return torch.matmul(Xc[start:stop], Xc[col_start:].T, out=S).neg_()
    torch.matmul(Xc[start:stop] * scale[start:stop, None], Xc[col_start:].T, out=S)
    return S.mul_(-scale[col_start:])


def _group_size(rows: int, k: int) -> int:
    """Rows per group for the column-wise selection over a block of ``rows`` rows (1 = direct).

    Ranking the groups' minima costs about ``rows / g`` per column and ranking the chosen groups'
    entries about ``k g``; ``g = sqrt(rows / k)`` balances the two.
    """
    return max(1, math.isqrt(rows // max(k, 1)))


def _column_smallest(S: torch.Tensor, k: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest entries of each column of ``S`` (values, row positions), unordered.

    With ``group > 1`` (dividing the row count) the rows are taken in groups of that size. An
    entry among a column's k smallest has fewer than k smaller entries, so fewer than k groups
    have a smaller minimum: its group is among the k groups with the smallest minima, and only
    those groups' entries are ranked. The selected values equal a direct top-k's.
    """
    rows = S.shape[0]
    k = min(k, rows)
    if group < 2 or rows % group or rows // group <= k:
        return torch.topk(S, k, dim=0, largest=False, sorted=False)
    minima = S.unflatten(0, (rows // group, group)).amin(dim=1)
    _, groups = torch.topk(minima, k, dim=0, largest=False, sorted=False)
    offsets = torch.arange(group, device=S.device)[None, :, None]
    candidates = (groups[:, None, :] * group + offsets).flatten(0, 1)
    values, pos = torch.topk(torch.gather(S, 0, candidates), k, dim=0, largest=False, sorted=False)
    return values, torch.gather(candidates, 0, pos)


def _select_candidates(
    Xc: torch.Tensor, k: int, metric: str, scale: torch.Tensor, rows: int
) -> torch.Tensor:
    """Indices (n, k) of the k smallest float32 scores per row, self excluded by index."""
    n = Xc.shape[0]
    best_v = torch.full((n, k), math.inf, dtype=torch.float32, device=Xc.device)
    best_i = torch.zeros((n, k), dtype=torch.int64, device=Xc.device)
    buffer = torch.empty(min(rows, n) * n, dtype=torch.float32, device=Xc.device)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        size = stop - start
        S = _block_scores(Xc, scale, metric, start, stop, start, buffer)
        S[:, :size].diagonal().fill_(math.inf)
        v, i = torch.topk(S, min(k, S.shape[1]), dim=1, largest=False, sorted=False)
        best_v[start:stop], best_i[start:stop] = _merge(
            best_v[start:stop], best_i[start:stop], v, i + start, k
        )
        if stop < n:
            v, i = _column_smallest(S[:, size:], k, _group_size(size, k))
            best_v[stop:], best_i[stop:] = _merge(best_v[stop:], best_i[stop:], v.T, i.T + start, k)
    return best_i


def _exact_rows_numpy(
    Xn: np.ndarray,
    indices: np.ndarray,
    inv: np.ndarray | None,
    out: np.ndarray,
    bounds: tuple[int, int],
    chunk: int,
) -> None:
    """Squared distances of rows ``bounds[0]:bounds[1]`` to their neighbours, into ``out``."""
    k, d = indices.shape[1], Xn.shape[1]
    for start in range(bounds[0], bounds[1], chunk):
        stop = min(start + chunk, bounds[1])
        idx = indices[start:stop].reshape(-1)
        neigh = np.take(Xn, idx, axis=0).reshape(stop - start, k, d)
        rows = Xn[start:stop, None, :]
        if inv is not None:
            neigh *= inv[idx].reshape(stop - start, k, 1)
            rows = rows * inv[start:stop, None, None]
        np.subtract(neigh, rows, out=neigh)
        np.square(neigh, out=neigh)
        out[start:stop] = neigh.sum(axis=2, dtype=np.float64)


def _exact_distances(
    X: torch.Tensor, indices: torch.Tensor, metric: str, inv_norms: torch.Tensor | None
) -> torch.Tensor:
    """Distances (n, k) between each row and its listed neighbours, recomputed from the rows.

    Differences of rows are formed in the input dtype (exact for near rows) and their squares are
    summed in float64, so duplicates give exactly 0. On the CPU this runs in NumPy over
    cache-sized chunks, one contiguous range of rows per torch thread (NumPy releases the GIL):
    small gathers in plain threads are faster than torch's parallel kernels, whose per-call
    synchronisation dominates (and degrades badly on shared cores).
    """
    n, k = indices.shape
    d = X.shape[1]
    chunk = max(1, _RECOMPUTE_BYTES // (k * d * X.element_size()))
    if X.device.type == "cpu":
        Xn, idx_np, out_np = X.numpy(), indices.numpy(), np.empty((n, k), dtype=np.float64)
        inv = None if inv_norms is None else inv_norms.numpy()
        workers = max(1, min(torch.get_num_threads(), n // chunk))
        edges = np.linspace(0, n, workers + 1).astype(int)
        if workers == 1:  # no pool: starting a thread costs more than small inputs take
            _exact_rows_numpy(Xn, idx_np, inv, out_np, (0, n), chunk)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                jobs = [
                    pool.submit(_exact_rows_numpy, Xn, idx_np, inv, out_np, (lo, hi), chunk)
                    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)
                ]
                for job in jobs:
                    job.result()
        out = torch.from_numpy(out_np)
    else:
        chunk *= 16  # fewer, larger kernel launches
        out = torch.empty((n, k), dtype=torch.float64, device=X.device)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            idx = indices[start:stop].reshape(-1)
            neigh = X.index_select(0, idx).view(stop - start, k, d)
            rows = X[start:stop, None, :]
            if inv_norms is not None:
                neigh.mul_(inv_norms[idx].view(stop - start, k, 1))
                rows = rows * inv_norms[start:stop, None, None]
            out[start:stop] = neigh.sub_(rows).square_().sum(dim=2, dtype=torch.float64)
    if metric == "euclidean":
        return out.sqrt_()
    return out.mul_(0.5)  # 1 - cos(u, v) = |u - v|^2 / 2 for unit vectors


def _minus_inner_products(X: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``-x_i . x_j`` (n, k) for the listed neighbours j of each row i, summed in float64."""
    n, k = indices.shape
    out = torch.empty((n, k), dtype=torch.float64, device=X.device)
    chunk = max(1, _RECOMPUTE_BYTES // (k * X.shape[1] * 8))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        neigh = X[indices[start:stop].reshape(-1)].view(stop - start, k, -1).to(torch.float64)
        out[start:stop] = -(neigh * X[start:stop, None, :].to(torch.float64)).sum(dim=2)
    return out


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
    sq = _row_sq_norms(Xt)
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
    key = _searches.key(X, settings)
    found = _searches.get(key)
    if found is not None:
        return found
    Xt, Xc, scale, inv_norms, exponent = _prepare(X, metric, device, name)
    if neighbors == "faiss-hnsw":
        indices = hnsw_candidates(Xc, k, metric, inv_norms)
    else:
        limit = block_rows(n, 8, working_memory)
        rows = min(limit, max(_MIN_BLOCK_ROWS, math.ceil(n / _TARGET_BLOCKS)))
        group = _group_size(rows, k)  # whole groups in every block but the last
        rows = rows + (-rows) % group if rows + (-rows) % group <= limit else rows - rows % group
        indices = _select_candidates(Xc, k, metric, scale, rows)
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
        dist = _minus_inner_products(Xt, indices)
    else:
        dist = _exact_distances(Xt, indices, metric, inv_norms)
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
        S = _block_scores(Xc, scale, metric, start, stop, 0, buffer)
        S[:, start:stop].diagonal().fill_(math.inf)
        threshold = torch.gather(S, 1, tgt[start:stop])
        for j in range(tgt.shape[1]):
            out[start:stop, j] = (S < threshold[:, j : j + 1]).sum(dim=1) + 1
    return out.cpu().numpy()
