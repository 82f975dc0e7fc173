"""Neighbourhood alignment: mutual k-NN, cycle k-NN and CKNNA (Huh et al. 2024).

All three compare the k nearest neighbours of each sample in two representations of the same
samples. Neighbours are exact (:func:`geomalign.metrics._neighbors.knn`: blocked products, no
N x N matrix, no full sort), so N = 100,000 fits in a few GiB.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import as_tensor, block_rows, resolve_device, take_rows
from geomalign.metrics._errors import check_min_samples
from geomalign.metrics._half_neighbours import HalfSampleNeighbours
from geomalign.metrics._neighbors import Neighbors, check_k, check_k_informative, knn
from geomalign.metrics.cka import cka_ratio

__all__ = ["cknna", "cycle_knn", "mutual_knn"]


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


def neighbours(
    X: np.ndarray | torch.Tensor,
    *,
    k: int,
    metric: str,
    clip_quantile: float | None,
    working_memory: float | None,
    device: str | torch.device | None,
    name: str,
) -> Neighbors:
    if clip_quantile is not None:
        X = _clip_outliers(as_tensor(X, resolve_device(X, device)), clip_quantile)
    return knn(X, k=k, metric=metric, working_memory=working_memory, device=device, name=name)


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

    Returns
    -------
    float
        Similarity in [0, 1]: 1 for identical neighbourhoods, about ``k / (n_samples - 1)`` for
        an unrelated pairing.

    See Also
    --------
    cycle_knn, cknna

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
    options = dict(k=k, metric=metric, clip_quantile=clip_quantile,
                   working_memory=working_memory, device=device)  # fmt: skip
    return _mutual_score(neighbours(X, name="X", **options), neighbours(Y, name="Y", **options))


def _mutual_score(bx: Neighbors, by: Neighbors) -> float:
    return float(overlap_counts(bx.indices, by.indices).mean() / bx.indices.shape[1])


def overlap_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, how many entries of ``a[i]`` also appear in ``b[i]`` (rows hold distinct ints)."""
    counts = np.zeros(a.shape[0], dtype=np.int64)
    for j in range(b.shape[1]):  # k passes of an (n, k) comparison: O(n k^2), no n x n mask
        counts += (a == b[:, j : j + 1]).any(axis=1)
    return counts


def cycle_knn(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    metric: str = "cosine",
    clip_quantile: float | None = None,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Cycle k-NN: share of samples that a Y-neighbour step then an X-neighbour step returns to.

    For each sample i, take its k nearest neighbours j in Y, then the k nearest neighbours of
    each such j in X; the sample scores 1 if i is among those :math:`k^2` samples. The
    measure is not symmetric in X and Y.

    Parameters
    ----------
    X, Y, k, metric, clip_quantile, working_memory, device
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
    options = dict(k=k, metric=metric, clip_quantile=clip_quantile,
                   working_memory=working_memory, device=device)  # fmt: skip
    return _cycle_score(neighbours(X, name="X", **options), neighbours(Y, name="Y", **options))


def _cycle_score(bx: Neighbors, by: Neighbors) -> float:
    nx, ny = bx.indices, by.indices
    back = nx[ny].reshape(len(nx), -1)  # (n, k*k): X-neighbours of each Y-neighbour
    return float((back == np.arange(len(nx))[:, None]).any(axis=1).mean())


def _masked_hsic(rows: np.ndarray, cols: np.ndarray, a: np.ndarray, b: np.ndarray, n: int) -> float:
    """Unbiased HSIC (times n(n-3)) of two sparse n x n matrices sharing a zero-diagonal support.

    ``A[rows, cols] = a`` and ``B[rows, cols] = b``; all other entries are 0.
    """
    codes = rows * n + cols
    order = np.argsort(codes)
    sorted_codes = codes[order]
    transposed = cols * n + rows
    pos = np.clip(np.searchsorted(sorted_codes, transposed), 0, max(len(codes) - 1, 0))
    has_t = sorted_codes[pos] == transposed if len(codes) else np.zeros(0, dtype=bool)
    trace = float(np.sum(a[has_t] * b[order[pos[has_t]]]))  # sum_ij A_ij B_ji
    col_a = np.bincount(cols, weights=a, minlength=n)
    row_b = np.bincount(rows, weights=b, minlength=n)
    return trace + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(col_a @ row_b)


def cknna(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    clip_quantile: float | None = None,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Centered kernel nearest-neighbour alignment (CKNNA) of two representations.

    CKA restricted to mutual neighbours: the cosine-similarity kernels of X and Y keep only the
    entries (i, j) where j is among the k nearest neighbours of i in both views, and the
    unbiased HSIC of these masked kernels is normalised as in CKA.

    Parameters
    ----------
    X, Y : array-like or torch.Tensor of shape (n_samples, n_features_x / n_features_y)
        Paired representations; needs ``n_samples >= 4``.
    k : int, default=10
        Neighbours per sample, ``2 <= k < n_samples``; as k approaches n - 1 CKNNA approaches
        debiased CKA of the L2-normalised rows.
    clip_quantile, working_memory, device
        As in :func:`mutual_knn`.

    Returns
    -------
    float
        Similarity, 1 for identical neighbourhood kernels; the unbiased HSIC makes values
        near 0 (possibly slightly negative) for unrelated views.

    Notes
    -----
    With :math:`K_{ij}` the cosine similarity in X, :math:`L_{ij}` in Y, and
    :math:`\alpha_{ij} = \mathbf{1}[j \in N_X(i) \cap N_Y(i)]`,

    .. math:: \mathrm{CKNNA} = \frac{\mathrm{HSIC}_u(\alpha \circ K, \alpha \circ L)}
              {\sqrt{\mathrm{HSIC}_u(\alpha_X \circ K, \alpha_X \circ K)\,
                     \mathrm{HSIC}_u(\alpha_Y \circ L, \alpha_Y \circ L)}}

    where the self-terms use each view's own neighbourhoods. The masked kernels are not
    symmetric, so neither is CKNNA (its HSIC has a term :math:`1^\top A B 1`); the difference
    between CKNNA(X, Y) and CKNNA(Y, X) is usually small. The masked kernels have n k
    non-zeros, so HSIC is computed on them directly in O(n k log(n k)) after the neighbour
    search. Departure from the reference code: no 1e-6 is added to the denominator; a
    non-positive self-term raises instead.

    References
    ----------
    .. [1] Huh, Cheung, Wang, Isola. The Platonic Representation Hypothesis. ICML 2024.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 8))
    >>> round(cknna(X, 3.0 * X, k=5), 6)
    1.0
    """
    X, Y = check_pair(X, Y, k, clip_quantile, "CKNNA")
    options = dict(k=k, metric="cosine", clip_quantile=clip_quantile,
                   working_memory=working_memory, device=device)  # fmt: skip
    return _cknna_score(neighbours(X, name="X", **options), neighbours(Y, name="Y", **options))


def _cknna_score(bx: Neighbors, by: Neighbors) -> float:
    n, k = bx.indices.shape
    rows = np.repeat(np.arange(n), k)
    kx, ky = 1.0 - bx.distances.reshape(-1), 1.0 - by.distances.reshape(-1)
    cx, cy = bx.indices.reshape(-1), by.indices.reshape(-1)
    h_xx = _masked_hsic(rows, cx, kx, kx, n)
    h_yy = _masked_hsic(rows, cy, ky, ky, n)
    # entries of the X list that are also in the Y list, with the Y kernel value at the same j
    y_codes = rows * n + cy
    order = np.argsort(y_codes)
    x_codes = rows * n + cx
    pos = np.clip(np.searchsorted(y_codes[order], x_codes), 0, len(y_codes) - 1)
    shared = y_codes[order][pos] == x_codes
    h_xy = _masked_hsic(rows[shared], cx[shared], kx[shared], ky[order[pos[shared]]], n)
    return cka_ratio(h_xy, h_xx, h_yy, ("X (k-NN masked)", "Y (k-NN masked)"))


def _permuted(b: Neighbors, perm: np.ndarray, inverse: np.ndarray) -> Neighbors:
    """Neighbours of ``Y[perm]`` from those of ``Y``: row i is old row perm[i]."""
    return Neighbors(inverse[b.indices[perm]], b.distances[perm], b.metric)


def _shuffler(score, what: str, cosine_only: bool = False):
    def shuffled(
        X: np.ndarray | torch.Tensor,
        Y: np.ndarray | torch.Tensor,
        *,
        k: int = 10,
        metric: str = "cosine",
        clip_quantile: float | None = None,
        working_memory: float | None = None,
        device: str | torch.device | None = None,
    ) -> Callable[[np.ndarray], float]:
        X, Y = check_pair(X, Y, k, clip_quantile, what)
        options = dict(k=k, metric="cosine" if cosine_only else metric,
                       clip_quantile=clip_quantile, working_memory=working_memory,
                       device=device)  # fmt: skip
        bx, by = neighbours(X, name="X", **options), neighbours(Y, name="Y", **options)

        def at(perm: np.ndarray) -> float:
            perm = np.asarray(perm, dtype=np.int64)
            return score(bx, _permuted(by, perm, np.argsort(perm)))

        return at

    shuffled.__doc__ = (
        f"Return ``perm -> {what}(X, Y[perm], ...)``; the neighbour lists are found once and "
        "re-indexed for each permutation (O(n k) per call instead of a new search)."
    )
    return shuffled


shuffled_mutual_knn = _shuffler(_mutual_score, "mutual k-NN")
shuffled_cycle_knn = _shuffler(_cycle_score, "cycle k-NN")
shuffled_cknna = _shuffler(_cknna_score, "CKNNA", cosine_only=True)


def _resampler(score, what: str, fresh, cosine_only: bool = False):
    def resampled(
        X: np.ndarray | torch.Tensor,
        Y: np.ndarray | torch.Tensor,
        *,
        k: int = 10,
        metric: str = "cosine",
        clip_quantile: float | None = None,
        working_memory: float | None = None,
        device: str | torch.device | None = None,
    ) -> Callable[[np.ndarray], np.ndarray]:
        X, Y = check_pair(X, Y, k, clip_quantile, what)
        options = dict(k=k, metric="cosine" if cosine_only else metric,
                       working_memory=working_memory, device=device)  # fmt: skip
        if clip_quantile is not None:  # the clipping threshold depends on the rows kept
            views = None
        else:
            views = [HalfSampleNeighbours(V, name=nm, **options) for V, nm in ((X, "X"), (Y, "Y"))]
        params = {"k": k, "clip_quantile": clip_quantile, "working_memory": working_memory,
                  "device": device, **({} if cosine_only else {"metric": metric})}  # fmt: skip

        def at(rows: np.ndarray) -> np.ndarray:
            out = []
            for r in np.asarray(rows, dtype=np.int64):
                pair = None if views is None else [v.within(r) for v in views]
                if pair is None or pair[0] is None or pair[1] is None:
                    out.append(fresh(take_rows(X, r), take_rows(Y, r), **params))
                else:
                    out.append(score(*pair))
            return np.array(out, dtype=np.float64)

        return at

    resampled.__doc__ = (
        f"Return ``rows -> [{what}(X[r], Y[r], ...) for r in rows]``; the neighbours within "
        "half-samples are read off one search of longer lists over all rows "
        "(:class:`~geomalign.metrics._half_neighbours.HalfSampleNeighbours`)."
    )
    return resampled


resampled_mutual_knn = _resampler(_mutual_score, "mutual k-NN", mutual_knn)
resampled_cycle_knn = _resampler(_cycle_score, "cycle k-NN", cycle_knn)
resampled_cknna = _resampler(_cknna_score, "CKNNA", cknna, cosine_only=True)
