"""CKNNA: centered kernel alignment restricted to mutual nearest neighbours (Huh et al. 2024).

The kernels masked to the k nearest neighbours of each row have n k non-zeros, so their HSIC is
computed from the neighbour lists directly (O(n k log(n k)) after the neighbour search), never
from n x n matrices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from geomalign.metrics._arrays import as_tensor, resolve_device, take_rows
from geomalign.metrics._cka_terms import cka_ratio
from geomalign.metrics._half_neighbours import HalfSampleNeighbours
from geomalign.metrics._neighbors import Neighbors
from geomalign.metrics.knn import check_pair, clipped, neighbours

__all__ = ["cknna", "resampled_cknna", "shuffled_cknna"]

METRICS = ("cosine", "inner_product")


@dataclass(frozen=True)
class _MaskedKernel:
    """One view's kernel kept on its k-NN mask: row i holds ``K[i, indices[i]] = values[i]``."""

    indices: np.ndarray
    values: np.ndarray

    def permuted(self, perm: np.ndarray, inverse: np.ndarray) -> _MaskedKernel:
        """The masked kernel of ``Y[perm]``: row i is old row perm[i]."""
        return _MaskedKernel(inverse[self.indices[perm]], self.values[perm])


def _transposed_trace(rows, cols, a, b, n: int) -> float:
    """``sum_ij A_ij B_ji`` for ``A[rows, cols] = a`` and ``B[rows, cols] = b`` (one support)."""
    codes = rows * n + cols
    if not len(codes):
        return 0.0
    order = np.argsort(codes)
    sorted_codes = codes[order]
    transposed = cols * n + rows
    pos = np.clip(np.searchsorted(sorted_codes, transposed), 0, len(codes) - 1)
    has_t = sorted_codes[pos] == transposed
    return float(np.sum(a[has_t] * b[order[pos[has_t]]]))


def _sparse_hsic(rows, cols, a, b, n: int, *, unbiased: bool) -> float:
    """HSIC of two sparse n x n matrices ``A[rows, cols] = a``, ``B[rows, cols] = b``.

    Unbiased (Song et al. 2012, times n (n - 3); the support must avoid the diagonal) or biased,
    ``trace(A H B H)`` with ``H = I - 1 1^T / n`` (diagonal entries kept).
    """
    trace = _transposed_trace(rows, cols, a, b, n)
    col_a = np.bincount(cols, weights=a, minlength=n)
    row_b = np.bincount(rows, weights=b, minlength=n)
    if unbiased:
        cross = float(col_a @ row_b)
        return trace + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross
    row_a = np.bincount(rows, weights=a, minlength=n)
    col_b = np.bincount(cols, weights=b, minlength=n)
    return trace - (float(col_a @ row_b) + float(col_b @ row_a)) / n + a.sum() * b.sum() / n**2


def _masked_kernel(
    X: np.ndarray | torch.Tensor,
    name: str,
    *,
    k: int,
    metric: str,
    unbiased: bool,
    distance_agnostic: bool,
    clip_quantile: float | None,
    working_memory: float | None,
    device: str | torch.device | None,
    neighbors: str,
) -> _MaskedKernel:
    """The kernel of one view (cosine or raw inner product) on its k-NN mask.

    Unbiased: the k nearest other rows. Biased: the k largest entries of the kernel row with
    the diagonal in it (the row itself first among ties, so for the cosine it is always kept).
    """
    X = clipped(X, clip_quantile, device)
    found = neighbours(X, k=k, metric=metric, clip_quantile=None, working_memory=working_memory,
                       device=device, name=name, neighbors=neighbors)  # fmt: skip
    return _from_neighbours(found, X, k, metric, unbiased, distance_agnostic, device)


def _from_neighbours(
    found: Neighbors,
    X: np.ndarray | torch.Tensor,
    k: int,
    metric: str,
    unbiased: bool,
    distance_agnostic: bool,
    device: str | torch.device | None,
) -> _MaskedKernel:
    """The masked kernel of the (clipped) rows ``X`` from their k nearest other rows."""
    indices = found.indices
    values = 1.0 - found.distances if metric == "cosine" else -found.distances
    if not unbiased:
        n = indices.shape[0]
        if metric == "cosine":
            own = np.ones(n)
        else:
            T = as_tensor(X, resolve_device(X, device))
            own = T.to(torch.float64).square().sum(dim=1).cpu().numpy()
        indices = np.concatenate([np.arange(n)[:, None], indices], axis=1)
        values = np.concatenate([own[:, None], values], axis=1)
        keep = np.argsort(-values, axis=1, kind="stable")[:, :k]
        indices = np.take_along_axis(indices, keep, axis=1)
        values = np.take_along_axis(values, keep, axis=1)
    if distance_agnostic:
        values = np.ones_like(values)
    return _MaskedKernel(indices, values)


def _score(kx: _MaskedKernel, ky: _MaskedKernel, unbiased: bool) -> float:
    n, k = kx.indices.shape
    rows = np.repeat(np.arange(n), k)
    cx, cy = kx.indices.reshape(-1), ky.indices.reshape(-1)
    vx, vy = kx.values.reshape(-1), ky.values.reshape(-1)
    h_xx = _sparse_hsic(rows, cx, vx, vx, n, unbiased=unbiased)
    h_yy = _sparse_hsic(rows, cy, vy, vy, n, unbiased=unbiased)
    # entries of the X list that are also in the Y list, with the Y kernel value at the same j
    y_codes = rows * n + cy
    order = np.argsort(y_codes)
    x_codes = rows * n + cx
    pos = np.clip(np.searchsorted(y_codes[order], x_codes), 0, len(y_codes) - 1)
    shared = y_codes[order][pos] == x_codes
    h_xy = _sparse_hsic(rows[shared], cx[shared], vx[shared], vy[order[pos[shared]]], n,
                        unbiased=unbiased)  # fmt: skip
    return cka_ratio(h_xy, h_xx, h_yy, ("X (k-NN masked)", "Y (k-NN masked)"))


def _checked(X, Y, *, k, metric, unbiased, distance_agnostic, **options):
    """The checked pair, after the options are checked."""
    for flag, label in ((unbiased, "unbiased"), (distance_agnostic, "distance_agnostic")):
        if not isinstance(flag, bool):
            raise TypeError(f"{label} must be True or False; got {flag!r}.")
    if metric not in METRICS:
        raise ValueError(
            f"CKNNA's metric must be one of {METRICS} (its kernel is a similarity); got {metric!r}."
        )
    return check_pair(X, Y, k, options["clip_quantile"], "CKNNA")


def _kernels(X, Y, *, k, metric, unbiased, distance_agnostic, **options):
    """Check the pair and the options; return both views' masked kernels."""
    X, Y = _checked(X, Y, k=k, metric=metric, unbiased=unbiased,
                    distance_agnostic=distance_agnostic, **options)  # fmt: skip
    spec = dict(k=k, metric=metric, unbiased=unbiased, distance_agnostic=distance_agnostic,
                **options)  # fmt: skip
    return _masked_kernel(X, "X", **spec), _masked_kernel(Y, "Y", **spec)


def cknna(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    metric: str = "cosine",
    unbiased: bool = True,
    distance_agnostic: bool = False,
    clip_quantile: float | None = None,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
) -> float:
    r"""Centered kernel nearest-neighbour alignment (CKNNA) of two representations.

    CKA restricted to mutual neighbours: the kernels of X and Y keep only the entries (i, j)
    where j is among the k nearest neighbours of i in both views, and the HSIC of these masked
    kernels is normalised as in CKA.

    Parameters
    ----------
    X, Y : array-like or torch.Tensor of shape (n_samples, n_features_x / n_features_y)
        Paired representations; needs ``n_samples >= 4``.
    k : int, default=10
        Neighbours per sample, ``2 <= k < n_samples``; as k approaches n - 1 CKNNA approaches
        debiased CKA of the L2-normalised rows.
    metric : {"cosine", "inner_product"}, default="cosine"
        The kernel, which also ranks the neighbours: cosine similarity (Huh et al.; platonic-rep's
        ``compute_score(normalize=True)``), or the raw inner product of un-normalised rows
        (``normalize=False``).
    unbiased : bool, default=True
        True: a row's own entry is never among its neighbours and the HSIC is the unbiased
        estimator. False (platonic-rep's ``cknna(unbiased=False)``): the k largest entries of
        each kernel row are kept with the diagonal in it (for the cosine the row itself and
        k - 1 neighbours) and the HSIC is the biased ``trace(A H B H)``.
    distance_agnostic : bool, default=False
        Replace the kernel values on the masks by 1: the HSIC of the neighbour masks
        themselves (see Notes for how this reading of platonic-rep's option was chosen).
    clip_quantile, working_memory, device, neighbors
        As in :func:`~geomalign.metrics.mutual_knn`: ``neighbors="faiss-hnsw"`` takes each
        view's neighbours from a faiss HNSW graph (the optional extra ``faiss``), with the
        kernel values on them computed exactly.

    Returns
    -------
    float
        Similarity, 1 for identical neighbourhood kernels; the unbiased HSIC makes values
        near 0 (possibly slightly negative) for unrelated views.

    Notes
    -----
    With :math:`K_{ij}` the kernel of X, :math:`L_{ij}` that of Y, and
    :math:`\alpha_{ij} = \mathbf{1}[j \in N_X(i) \cap N_Y(i)]`,

    .. math:: \mathrm{CKNNA} = \frac{\mathrm{HSIC}(\alpha \circ K, \alpha \circ L)}
              {\sqrt{\mathrm{HSIC}(\alpha_X \circ K, \alpha_X \circ K)\,
                     \mathrm{HSIC}(\alpha_Y \circ L, \alpha_Y \circ L)}}

    where the self-terms use each view's own neighbourhoods. The masked kernels are not
    symmetric, so neither is CKNNA (its HSIC has a term :math:`1^\top A B 1`); the difference
    between CKNNA(X, Y) and CKNNA(Y, X) is usually small. Departure from the reference code: no
    1e-6 is added to the denominator; a non-positive self-term raises instead.

    ``distance_agnostic=True``: platonic-rep's branch sets the "similarity" to the n x n mask
    itself and then calls ``.item()`` on it, which fails for n > 1, so its intended value has to
    be inferred. The branch stands where the masked kernels enter the HSIC, and the rest of the
    function (the HSIC of the chosen bias, the CKA normalisation) is unchanged, so here the
    kernels are replaced by the masks: :math:`K = L = 1`, giving
    :math:`\mathrm{HSIC}(\alpha, \alpha) / \sqrt{\mathrm{HSIC}(\alpha_X, \alpha_X)\,
    \mathrm{HSIC}(\alpha_Y, \alpha_Y)}`. The other reading, the sum of the mask in place of
    each HSIC, gives exactly :func:`~geomalign.metrics.mutual_knn` (for ``unbiased=True``), which
    needs no option.

    References
    ----------
    .. [1] Huh, Cheung, Wang, Isola. The Platonic Representation Hypothesis. ICML 2024.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 8))
    >>> round(cknna(X, 3.0 * X, k=5), 6)
    1.0
    """
    kx, ky = _kernels(X, Y, k=k, metric=metric, unbiased=unbiased,
                      distance_agnostic=distance_agnostic, clip_quantile=clip_quantile,
                      working_memory=working_memory, device=device,
                      neighbors=neighbors)  # fmt: skip
    return _score(kx, ky, unbiased)


def shuffled_cknna(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    metric: str = "cosine",
    unbiased: bool = True,
    distance_agnostic: bool = False,
    clip_quantile: float | None = None,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``perms -> [cknna(X, Y[perm], ...) for perm in perms]``; the masked kernels are
    found once and re-indexed for each permutation (O(n k log(n k)) per permutation instead of
    a new search)."""
    kx, ky = _kernels(X, Y, k=k, metric=metric, unbiased=unbiased,
                      distance_agnostic=distance_agnostic, clip_quantile=clip_quantile,
                      working_memory=working_memory, device=device,
                      neighbors=neighbors)  # fmt: skip

    def at(perms: np.ndarray) -> np.ndarray:
        perms = np.asarray(perms, dtype=np.int64)
        return np.array(
            [_score(kx, ky.permuted(perm, np.argsort(perm)), unbiased) for perm in perms]
        )

    return at


def resampled_cknna(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    metric: str = "cosine",
    unbiased: bool = True,
    distance_agnostic: bool = False,
    clip_quantile: float | None = None,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``rows -> [cknna(X[r], Y[r], ...) for r in rows]``; without clipping (whose
    threshold depends on the rows kept) the neighbours within half-samples are read off one
    search of longer lists over all rows
    (:class:`~geomalign.metrics._half_neighbours.HalfSampleNeighbours`)."""
    options = dict(k=k, metric=metric, unbiased=unbiased, distance_agnostic=distance_agnostic,
                   clip_quantile=clip_quantile, working_memory=working_memory,
                   device=device, neighbors=neighbors)  # fmt: skip
    X, Y = _checked(X, Y, **options)
    views = None
    if clip_quantile is None:
        views = [(V, HalfSampleNeighbours(V, k=k, metric=metric, working_memory=working_memory,
                                          device=device, name=name, neighbors=neighbors))
                 for V, name in ((X, "X"), (Y, "Y"))]  # fmt: skip

    def at(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        none = [None] * len(rows)
        found = (none, none) if views is None else [half.within_each(rows) for _, half in views]
        out = []
        for r, fx, fy in zip(rows, *found, strict=True):
            if views is None or fx is None or fy is None:
                out.append(cknna(take_rows(X, r), take_rows(Y, r), **options))  # type: ignore[arg-type]
                continue
            (VX, _), (VY, _) = views
            kx = _from_neighbours(
                fx, take_rows(VX, r), k, metric, unbiased, distance_agnostic, device
            )
            ky = _from_neighbours(
                fy, take_rows(VY, r), k, metric, unbiased, distance_agnostic, device
            )
            out.append(_score(kx, ky, unbiased))
        return np.array(out, dtype=np.float64)

    return at
