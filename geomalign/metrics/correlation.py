"""Correlation-based similarities: SVCCA and distance correlation."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import (
    as_tensor,
    block_rows,
    column_sums,
    resolve_device,
    unit_scaled,
)
from geomalign.metrics._cka_terms import centred_product, common_dtype
from geomalign.metrics._errors import UndefinedMeasureError, check_min_samples

__all__ = ["distance_correlation", "svcca"]


def _check_pair(X, Y, min_samples: int, what: str, reason: str, device):
    """Checked tensors of both views, each divided by a power of two (see ``unit_scaled``)."""
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    check_paired(X, Y)
    check_min_samples(X.shape[0], min_samples, what, reason)
    dev = resolve_device(X if isinstance(X, torch.Tensor) else Y, device)
    dtype = common_dtype(X, Y)
    return unit_scaled(as_tensor(X, dev, dtype))[0], unit_scaled(as_tensor(Y, dev, dtype))[0]


REDUCTIONS = ("pca", "anatome")


def _principal_basis(
    X: torch.Tensor, n_components: float, name: str, reduction: str = "pca"
) -> torch.Tensor:
    """Orthonormal (n, r) float64 basis of the kept directions of X, centred.

    ``"pca"``: the top principal directions of centred X, the fewest that explain
    ``n_components`` of the variance. ``"anatome"``: the top right singular vectors of X itself
    (uncentred), those whose cumulative share of the sum of singular values is below
    ``n_components``; X projected on them is then centred. From the eigendecomposition of
    whichever of X^T X (p x p) and X X^T (n x n) is smaller.
    """
    n, p = X.shape
    mean = column_sums(X) / n if reduction == "pca" else torch.zeros(p, dtype=torch.float64)
    if n <= p:
        Xc = X - mean.to(X.dtype)
        evals, evecs = torch.linalg.eigh((Xc @ Xc.T).to(torch.float64))
    else:
        evals, evecs = torch.linalg.eigh(centred_product(X, mean, X, mean))
    evals, evecs = evals.flip(0), evecs.flip(1)
    rank = int((evals > evals[0] * max(n, p) * torch.finfo(X.dtype).eps).sum())
    if rank == 0:
        raise UndefinedMeasureError(f"SVCCA is undefined: {name} has no variance across samples.")
    if isinstance(n_components, float) and reduction == "anatome":
        singular = evals[:rank].clamp(min=0.0).sqrt()
        r = int((torch.cumsum(singular, 0) / singular.sum() < n_components).sum())
        if r == 0:
            raise UndefinedMeasureError(
                f"SVCCA keeps no direction of {name}: its first singular value alone carries "
                f"more than n_components={n_components} of their sum."
            )
    elif isinstance(n_components, float):
        share = torch.cumsum(evals[:rank], 0) / evals[:rank].sum()
        r = min(int(torch.searchsorted(share, n_components)) + 1, rank)
    else:
        r = int(n_components)
        if r > rank:
            raise ValueError(
                f"n_components={r} exceeds the rank of centred {name} ({rank}, at most "
                f"min(n_samples - 1, n_features) = {min(n - 1, p)})."
            )
    if n <= p:
        basis = evecs[:, :r]
    else:
        V = evecs[:, :r] / evals[:r].sqrt()
        basis = torch.empty((n, r), dtype=torch.float64, device=X.device)
        for start in range(0, n, 8192):
            block = (X[start : start + 8192] - mean.to(X.dtype)).to(torch.float64)
            basis[start : start + 8192] = block @ V
    if reduction == "anatome":  # the projection of uncentred X, centred before the CCA
        basis = torch.linalg.qr(basis - basis.mean(dim=0))[0]
    return basis


def _check_components(n_components: object) -> tuple[int | float, int | float]:
    """``n_components`` for (X, Y): one value for both, or a pair."""
    pair = n_components if isinstance(n_components, (tuple, list)) else (n_components,) * 2
    if len(pair) != 2:
        raise ValueError(f"n_components must be one value or a pair (X, Y); got {n_components!r}.")
    for value in pair:
        valid_float = isinstance(value, float) and 0.0 < value < 1.0
        valid_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not (valid_float or (valid_int and value >= 1)):
            raise ValueError(
                "n_components must be an int >= 1 or a float in (0, 1), or a pair of them; got "
                f"{n_components!r}."
            )
    return pair[0], pair[1]


def svcca(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    n_components: int | float | tuple[int | float, int | float] = 0.99,
    reduction: str = "pca",
    device: str | torch.device | None = None,
) -> float:
    r"""Singular vector canonical correlation analysis (SVCCA) similarity.

    Each view is reduced to its top principal directions, then the mean canonical correlation
    between the two reduced views is returned.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features_x)
    Y : array-like or torch.Tensor of shape (n_samples, n_features_y)
        Paired representations; widths may differ.
    n_components : int or float, or a pair of them, default=0.99
        Directions kept per view: an int keeps that many; a float in (0, 1) keeps the fewest
        directions explaining that share of the variance (Raghu et al. keep 99%). A pair
        ``(for_X, for_Y)`` sets each view's on its own.
    reduction : {"pca", "anatome"}, default="pca"
        ``"pca"``: principal directions of each centred view. ``"anatome"``: anatome's
        ``svcca_distance`` reduction: the top right singular vectors of the view itself
        (uncentred), as many as have a cumulative share of the sum of singular values below
        a float ``n_components`` (its ``accept_rate``); the projected view is centred before
        the CCA. anatome returns the distance ``1 -`` this similarity.
    device : str or torch.device, optional
        Where to compute; default: the device of a tensor input, else the CPU.

    Returns
    -------
    float
        Mean of the :math:`\min(r_x, r_y)` canonical correlations, in [0, 1].

    Raises
    ------
    UndefinedMeasureError
        On fewer than 3 samples, or when a view keeps :math:`n - 1` directions or more: they
        span the whole (n - 1)-dimensional space of centred samples, so every canonical
        correlation is 1 whatever the data.

    Notes
    -----
    With :math:`U_x` (n x :math:`r_x`) an orthonormal basis of the kept principal directions of
    centred X, the canonical correlations are the singular values of :math:`U_x^\top U_y`.
    Bases come from the eigendecomposition of the smaller of the covariance and Gram matrices,
    in float64. When :math:`r_x + r_y` approaches n the canonical correlations approach 1
    whatever the data (CCA overfits); keep ``n_components`` well below ``n_samples``.

    References
    ----------
    .. [1] Raghu, Gilmer, Yosinski, Sohl-Dickstein. SVCCA: Singular Vector Canonical
       Correlation Analysis for Deep Learning Dynamics and Interpretability. NeurIPS 2017.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 6))
    >>> round(svcca(X, X @ np.random.default_rng(1).standard_normal((6, 6))), 6)
    1.0
    """
    kept_x, kept_y = _check_components(n_components)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}.")
    reason = "the centred rows of each view span a line, so the canonical correlation is 1"
    Xt, Yt = _check_pair(X, Y, 3, "SVCCA", reason, device)
    Ux = _principal_basis(Xt, kept_x, "X", reduction)
    Uy = _principal_basis(Yt, kept_y, "Y", reduction)
    n, r = Xt.shape[0], max(Ux.shape[1], Uy.shape[1])
    if r >= n - 1:
        raise UndefinedMeasureError(
            f"SVCCA is undefined with {r} directions kept from {n} samples: {r} directions span "
            f"all {n - 1} dimensions of the centred samples, so every canonical correlation is 1 "
            "whatever the data. Keep fewer directions (n_components) or use more samples."
        )
    rho = torch.linalg.svdvals(Ux.T @ Uy).clamp_(0.0, 1.0)
    return float(rho.mean())


def _distance_rows(X: torch.Tensor, sq: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Euclidean distances (float64) from rows start:stop to all rows; X is centred."""
    D2 = (X[start:stop] @ X.T).to(torch.float64).mul_(-2.0).add_(sq).add_(sq[start:stop, None])
    D2[:, start:stop].diagonal().zero_()
    return D2.clamp_(min=0.0).sqrt_()


def distance_correlation(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    squared: bool = False,
    debiased: bool = False,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Distance correlation (Székely, Rizzo and Bakirov 2007) between paired representations.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features_x)
    Y : array-like or torch.Tensor of shape (n_samples, n_features_y)
        Paired representations; widths may differ.
    squared : bool, default=False
        Return the squared distance correlation dCor² instead of dCor.
    debiased : bool, default=False
        Use the bias-corrected estimator of dCor² of Székely and Rizzo (2014), built from
        U-centred distance matrices (needs n >= 4; near 0, possibly negative, for independent
        views). It estimates the square only, so it needs ``squared=True``.
    working_memory : float, optional
        MiB for one block of distance rows (default 1024); the n x n distance matrices are
        never formed.
    device : str or torch.device, optional
        Where to compute; default: the device of a tensor input, else the CPU.

    Returns
    -------
    float
        dCor in [0, 1] (0 only for independent variables in the population limit, 1 when Y is
        a similarity transform of X); with ``squared``, dCor² (bias-corrected with
        ``debiased``).

    Raises
    ------
    UndefinedMeasureError
        On fewer than 3 samples (4 when debiased): with 2 samples dCor is 1 whatever the data.

    Notes
    -----
    With Euclidean distance matrices :math:`a, b`, row sums :math:`a_{i\cdot}` and total
    :math:`a_{\cdot\cdot}`, the double-centred product expands to

    .. math:: n^2\, \mathrm{dCov}^2_n(X, Y) = \sum_{ij} a_{ij} b_{ij}
              - \tfrac{2}{n} \sum_i a_{i\cdot} b_{i\cdot} + \tfrac{1}{n^2} a_{\cdot\cdot}
              b_{\cdot\cdot},

    so one pass over blocks of distance rows accumulates everything (float64).
    :math:`\mathrm{dCor}^2 = \mathrm{dCov}^2(X, Y) / \sqrt{\mathrm{dCov}^2(X, X)\,
    \mathrm{dCov}^2(Y, Y)}`. The bias-corrected form uses the unbiased estimator
    :math:`\sum_{ij} a_{ij} b_{ij} + \frac{a_{\cdot\cdot} b_{\cdot\cdot}}{(n-1)(n-2)}
    - \frac{2}{n-2} \sum_i a_{i\cdot} b_{i\cdot}` (over :math:`n(n-3)`). Rows are centred
    before distances are formed from float32 products.

    References
    ----------
    .. [1] Székely, Rizzo, Bakirov. Measuring and testing dependence by correlation of
       distances. Annals of Statistics 35(6), 2007.
    .. [2] Székely, Rizzo. Partial distance correlation with methods for dissimilarities.
       Annals of Statistics 42(6), 2014.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((60, 4))
    >>> round(distance_correlation(X, 2.0 * X + 1.0), 6)
    1.0
    """
    for name, flag in (("squared", squared), ("debiased", debiased)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False; got {flag!r}.")
    if debiased and not squared:
        raise ValueError(
            "the bias-corrected estimator estimates dCor squared (it can be negative, so it has "
            "no square root): pass squared=True with debiased=True."
        )
    if debiased:
        what, need, reason = (
            "debiased distance correlation",
            4,
            "its estimator divides by n (n - 3)",
        )
    else:
        what, need = "distance correlation", 3
        reason = "any two double-centred distance matrices of 2 samples are proportional"
    Xt, Yt = _check_pair(X, Y, need, what, reason, device)
    n = Xt.shape[0]
    Xt = Xt - (column_sums(Xt) / n).to(Xt.dtype)
    Yt = Yt - (column_sums(Yt) / n).to(Yt.dtype)
    sq_x = Xt.square().sum(dim=1, dtype=torch.float64)
    sq_y = Yt.square().sum(dim=1, dtype=torch.float64)
    row_a = torch.empty(n, dtype=torch.float64, device=Xt.device)
    row_b = torch.empty_like(row_a)
    s_ab = s_aa = s_bb = 0.0
    rows = block_rows(n, 8 * 4, working_memory)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        A, B = _distance_rows(Xt, sq_x, start, stop), _distance_rows(Yt, sq_y, start, stop)
        row_a[start:stop], row_b[start:stop] = A.sum(dim=1), B.sum(dim=1)
        s_ab += float(torch.dot(A.reshape(-1), B.reshape(-1)))
        s_aa += float(torch.dot(A.reshape(-1), A.reshape(-1)))
        s_bb += float(torch.dot(B.reshape(-1), B.reshape(-1)))
    t_a, t_b = float(row_a.sum()), float(row_b.sum())

    def dcov(s: float, ra: torch.Tensor, rb: torch.Tensor, ta: float, tb: float) -> float:
        if debiased:
            return s + ta * tb / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(ra @ rb)
        return s - 2.0 / n * float(ra @ rb) + ta * tb / n**2

    v_xy = dcov(s_ab, row_a, row_b, t_a, t_b)
    v_xx = dcov(s_aa, row_a, row_a, t_a, t_a)
    v_yy = dcov(s_bb, row_b, row_b, t_b, t_b)
    for v, name in ((v_xx, "X"), (v_yy, "Y")):
        if not v > 0.0:
            raise UndefinedMeasureError(
                f"distance correlation is undefined: the distance variance of {name} is "
                f"{v:.3g} (expected > 0); {name} has (almost) no variation across samples."
            )
    r2 = v_xy / math.sqrt(v_xx * v_yy)
    return r2 if squared else math.sqrt(max(r2, 0.0))
