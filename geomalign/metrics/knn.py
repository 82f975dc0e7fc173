"""Neighbourhood alignment: mutual k-NN and cycle k-NN (Huh et al. 2024); CKNNA is in cknna.py.

Both compare the k nearest neighbours of each sample in two representations of the same
samples. Neighbours are exact by default (:func:`geomalign.metrics._neighbors.knn`: blocked
products, no N x N matrix, no full sort), so N = 100,000 fits in a few GiB; ``neighbors=
"faiss-hnsw"`` takes approximate ones from faiss for N in the millions (as do CKNNA, the
order-aware k-NN comparisons and the neighbour-based intrinsic dimensions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypedDict

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import as_tensor, block_rows, resolve_device, take_rows
from geomalign.metrics._errors import check_min_samples
from geomalign.metrics._half_neighbours import HalfSampleNeighbours
from geomalign.metrics._neighbors import Neighbors, check_k, check_k_informative, knn

__all__ = ["cycle_knn", "mutual_knn"]


def _clip_outliers(X: torch.Tensor, q: float) -> torch.Tensor:
    """Clamp X to [-t, t], t the mean over rows of each row's q-quantile of |x| (a copy)."""
    n, d = X.shape
    pos = q * (d - 1)
    lo, frac = math.floor(pos), pos - math.floor(pos)
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    rows = block_rows(d, 8, 256)
    for start in range(0, n, rows):
        A = X[start : start + rows].abs()
        below = torch.kthvalue(A, lo + 1, dim=1).values.to(torch.float64)
        above = torch.kthvalue(A, min(lo + 2, d), dim=1).values.to(torch.float64)
        total += (below + frac * (above - below)).sum()
    t = float(total) / n
    return X.clamp(-t, t)


class _SearchOptions(TypedDict):
    """The options of one neighbour search (:func:`neighbours` without ``clip_quantile``)."""

    k: int
    metric: str
    working_memory: float | None
    device: str | torch.device | None
    neighbors: str


class _KnnOptions(_SearchOptions):
    clip_quantile: float | None


def clipped(
    X: np.ndarray | torch.Tensor, clip_quantile: float | None, device: str | torch.device | None
) -> np.ndarray | torch.Tensor:
    """X clamped as ``clip_quantile`` says (see :func:`mutual_knn`), or X itself for None."""
    if clip_quantile is None:
        return X
    return _clip_outliers(as_tensor(X, resolve_device(X, device)), clip_quantile)


def neighbours(
    X: np.ndarray | torch.Tensor,
    *,
    k: int,
    metric: str,
    clip_quantile: float | None,
    working_memory: float | None,
    device: str | torch.device | None,
    name: str,
    neighbors: str = "exact",
) -> Neighbors:
    X = clipped(X, clip_quantile, device)
    return knn(X, k=k, metric=metric, working_memory=working_memory, device=device, name=name,
               neighbors=neighbors)  # fmt: skip


def check_pair(X, Y, k: int, clip_quantile: float | None, what: str):
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    check_paired(X, Y)
    n = X.shape[0]
    if what == "CKNNA":
        check_min_samples(n, 4, what, "its unbiased HSIC divides by n (n - 3)")
        check_k(k, n, what="X and Y")
        if k < 2:
            raise ValueError(f"CKNNA needs k >= 2 (a kernel over one neighbour); got k={k}.")
    else:
        check_min_samples(n, 3, what, "each sample's one neighbour is the other sample")
        check_k_informative(k, n, what)
    if clip_quantile is not None and not (
        isinstance(clip_quantile, (int, float)) and 0.0 < clip_quantile < 1.0
    ):
        raise ValueError(f"clip_quantile must be in (0, 1) or None; got {clip_quantile!r}.")
    return X, Y


def mutual_knn(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    metric: str = "cosine",
    clip_quantile: float | None = None,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
) -> float:
    r"""Mutual k-nearest-neighbour alignment of two representations of the same samples.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features_x)
    Y : array-like or torch.Tensor of shape (n_samples, n_features_y)
        Rows are the same stimuli in the same order; widths may differ.
    k : int, default=10
        Neighbours per sample, ``1 <= k < n_samples``.
    metric : {"cosine", "euclidean", "inner_product"}, default="cosine"
        Neighbourhoods by cosine similarity (Huh et al.; the same as Euclidean after L2
        normalisation), by Euclidean distance (DADApy's data overlap, usually with k=30), or by
        the raw inner product of un-normalised rows (platonic-rep's ``compute_score`` with
        ``normalize=False``).
    clip_quantile : float in (0, 1), optional
        Clamp each view elementwise at ``t``, the mean over rows of each row's
        ``clip_quantile``-quantile of ``|x|``, before the neighbours are found (Huh et al. use
        0.95). Default: no clipping.
    working_memory : float, optional
        MiB for one block of products (default 1024).
    device : str or torch.device, optional
        Where to compute; default: the device of a tensor input, else the CPU.
    neighbors : {"exact", "faiss-hnsw"}, default="exact"
        Exact neighbours, or approximate ones from a faiss HNSW graph (the optional extra
        ``faiss``; its recall against exact search is printed by
        ``benchmarks/scale_bench.py``), for N in the millions.

    Returns
    -------
    float
        Similarity in [0, 1]: 1 for identical neighbourhoods, about ``k / (n_samples - 1)`` for
        an unrelated pairing.

    See Also
    --------
    cycle_knn, geomalign.metrics.cknna

    Notes
    -----
    With :math:`N_X(i)` the k nearest neighbours of sample i in X (itself excluded),

    .. math:: \mathrm{mKNN}(X, Y) = \frac{1}{n} \sum_i \frac{|N_X(i) \cap N_Y(i)|}{k}.

    Neighbours are exact; where several samples tie for the k-th place, which of them is listed
    is unspecified (as with any top-k).

    References
    ----------
    .. [1] Huh, Cheung, Wang, Isola. The Platonic Representation Hypothesis. ICML 2024.
    .. [2] Glielmo et al. DADApy: Distance-based analysis of data-manifolds in Python.
       Patterns 3, 2022.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 8))
    >>> mutual_knn(X, 2.0 * X, k=5)
    1.0
    """
    X, Y = check_pair(X, Y, k, clip_quantile, "mutual k-NN")
    options: _KnnOptions = {"k": k, "metric": metric, "clip_quantile": clip_quantile,
                            "working_memory": working_memory, "device": device,
                            "neighbors": neighbors}  # fmt: skip
    return float(_mutual_score(neighbours(X, name="X", **options).indices,
                               neighbours(Y, name="Y", **options).indices))  # fmt: skip


def _mutual_score(nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Mutual k-NN of the neighbour indices (..., n, k) of X and of Y, shape (...)."""
    return overlap_counts(nx, ny).mean(axis=-1) / nx.shape[-1]


def overlap_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, how many entries of ``a[..., i, :]`` also appear in ``b[..., i, :]`` (rows hold
    distinct ints; leading dimensions broadcast).

    Each row of both sorted together: a shared entry is a pair of equal neighbours (O(n k log
    k), no n x n mask).
    """
    a, b = np.broadcast_arrays(a, b)
    both = np.sort(np.concatenate([a, b], axis=-1), axis=-1)
    return np.count_nonzero(both[..., 1:] == both[..., :-1], axis=-1)


def cycle_knn(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    metric: str = "cosine",
    clip_quantile: float | None = None,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
) -> float:
    r"""Cycle k-NN: share of samples that a Y-neighbour step then an X-neighbour step returns to.

    For each sample i, take its k nearest neighbours j in Y, then the k nearest neighbours of
    each such j in X; the sample scores 1 if i is among those :math:`k^2` samples. The
    measure is not symmetric in X and Y.

    Parameters
    ----------
    X, Y, k, metric, clip_quantile, working_memory, device, neighbors
        As in :func:`mutual_knn`.

    Returns
    -------
    float
        Similarity in [0, 1].

    Notes
    -----
    .. math:: \mathrm{cycle}(X, Y) = \frac{1}{n} \sum_i
              \mathbf{1}\Big[i \in \textstyle\bigcup_{j \in N_Y(i)} N_X(j)\Big]

    References
    ----------
    .. [1] Huh, Cheung, Wang, Isola. The Platonic Representation Hypothesis. ICML 2024.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 8))
    >>> cycle_knn(X, X, k=5) > 0.9
    True
    """
    X, Y = check_pair(X, Y, k, clip_quantile, "cycle k-NN")
    options: _KnnOptions = {"k": k, "metric": metric, "clip_quantile": clip_quantile,
                            "working_memory": working_memory, "device": device,
                            "neighbors": neighbors}  # fmt: skip
    return float(_cycle_score(neighbours(X, name="X", **options).indices,
                              neighbours(Y, name="Y", **options).indices))  # fmt: skip


def _cycle_score(nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Cycle k-NN of the neighbour indices (..., n, k) of X and of Y (leading dimensions
    broadcast), shape (...)."""
    nx, ny = np.broadcast_arrays(nx, ny)
    *lead, n, k = nx.shape
    flat_x, flat_y = nx.reshape(-1, n, k), ny.reshape(-1, n, k)
    # (S, n, k*k): the X-neighbours of each Y-neighbour
    back = flat_x[np.arange(len(flat_x))[:, None, None], flat_y].reshape(len(flat_x), n, -1)
    return (back == np.arange(n)[:, None]).any(axis=-1).mean(axis=-1).reshape(lead)


def _permuted(indices: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Neighbour indices (S, n, k) of each ``Y[perm]`` (``perms`` of shape (S, n)) from those
    (n, k) of ``Y``: row i of a permuted view is old row perm[i]."""
    S, n = perms.shape
    inverse = np.empty_like(perms)
    np.put_along_axis(inverse, perms, np.arange(n)[None, :], axis=1)
    moved = indices[perms].reshape(S, -1)
    return np.take_along_axis(inverse, moved, axis=1).reshape(S, n, indices.shape[1])


# Neighbour entries scored per chunk of permutations or resamples.
_CHUNK_ENTRIES = 2**21


def _scores(score, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """``score`` of the neighbour indices ``nx`` ((n, k), or (S, n, k)) and each of the stacked
    ``ny`` (S, n, k), in chunks of about :data:`_CHUNK_ENTRIES` products (S,)."""
    S, n, k = ny.shape
    out = np.empty(S)
    step = max(1, _CHUNK_ENTRIES // (n * k * k))
    for start in range(0, S, step):
        x = nx if nx.ndim == 2 else nx[start : start + step]
        out[start : start + step] = score(x, ny[start : start + step])
    return out


def _shuffler(score, what: str):
    def shuffled(
        X: np.ndarray | torch.Tensor,
        Y: np.ndarray | torch.Tensor,
        *,
        k: int = 10,
        metric: str = "cosine",
        clip_quantile: float | None = None,
        working_memory: float | None = None,
        device: str | torch.device | None = None,
        neighbors: str = "exact",
    ) -> Callable[[np.ndarray], np.ndarray]:
        X, Y = check_pair(X, Y, k, clip_quantile, what)
        options: _KnnOptions = {"k": k, "metric": metric, "clip_quantile": clip_quantile,
                                "working_memory": working_memory, "device": device,
                                "neighbors": neighbors}  # fmt: skip
        nx = neighbours(X, name="X", **options).indices
        ny = neighbours(Y, name="Y", **options).indices

        def at(perms: np.ndarray) -> np.ndarray:
            perms = np.asarray(perms, dtype=np.int64)
            out = np.empty(len(perms))
            step = max(1, _CHUNK_ENTRIES // ny.size)
            for start in range(0, len(perms), step):
                chunk = perms[start : start + step]
                out[start : start + len(chunk)] = _scores(score, nx, _permuted(ny, chunk))
            return out

        return at

    shuffled.__doc__ = (
        f"Return ``perms -> [{what}(X, Y[perm], ...) for perm in perms]``; the neighbour lists "
        "are found once and re-indexed for all permutations at once (O(n k) per permutation "
        "instead of a new search)."
    )
    return shuffled


shuffled_mutual_knn = _shuffler(_mutual_score, "mutual k-NN")
shuffled_cycle_knn = _shuffler(_cycle_score, "cycle k-NN")


def _resampler(score, what: str, fresh):
    def resampled(
        X: np.ndarray | torch.Tensor,
        Y: np.ndarray | torch.Tensor,
        *,
        k: int = 10,
        metric: str = "cosine",
        clip_quantile: float | None = None,
        working_memory: float | None = None,
        device: str | torch.device | None = None,
        neighbors: str = "exact",
    ) -> Callable[[np.ndarray], np.ndarray]:
        X, Y = check_pair(X, Y, k, clip_quantile, what)
        options: _SearchOptions = {"k": k, "metric": metric, "working_memory": working_memory,
                                   "device": device, "neighbors": neighbors}  # fmt: skip
        if clip_quantile is not None:  # the clipping threshold depends on the rows kept
            views = None
        else:
            views = [HalfSampleNeighbours(V, name=nm, **options) for V, nm in ((X, "X"), (Y, "Y"))]
        params = {"k": k, "clip_quantile": clip_quantile, "working_memory": working_memory,
                  "device": device, "metric": metric, "neighbors": neighbors}  # fmt: skip

        def at(rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(rows, dtype=np.int64)
            out = np.empty(len(rows))
            both = np.zeros(len(rows), dtype=bool)
            if views is not None:
                (fx, ix, _), (fy, iy, _) = (v.within_all(rows) for v in views)
                both = fx & fy  # ix, iy: the resamples each view found, in order
                out[both] = _scores(score, ix[both[fx]], iy[both[fy]])
            for i in np.flatnonzero(~both):
                out[i] = fresh(take_rows(X, rows[i]), take_rows(Y, rows[i]), **params)
            return out

        return at

    resampled.__doc__ = (
        f"Return ``rows -> [{what}(X[r], Y[r], ...) for r in rows]``; the neighbours within "
        "half-samples are read off one search of longer lists over all rows "
        "(:class:`~geomalign.metrics._half_neighbours.HalfSampleNeighbours`)."
    )
    return resampled


resampled_mutual_knn = _resampler(_mutual_score, "mutual k-NN", mutual_knn)
resampled_cycle_knn = _resampler(_cycle_score, "cycle k-NN", cycle_knn)
