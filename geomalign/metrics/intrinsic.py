"""Intrinsic dimension of a point cloud: TwoNN, GRIDE, Levina-Bickel MLE, participation ratio.

The neighbour-based estimators (TwoNN, GRIDE, MLE) need every point's nearest neighbours at
a positive distance. Duplicate rows (and near-duplicates, rows that differ only by rounding,
as in float16 activations) make a first-neighbour distance zero and an estimate NaN or
meaningless, so they are found first and all but one row of each group dropped, with a
warning that gives the count.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geomalign._validation import check_int, check_representations
from geomalign.metrics import _id_estimators as est
from geomalign.metrics._arrays import take_rows
from geomalign.metrics._errors import UndefinedMeasureError, check_min_samples
from geomalign.metrics._neighbors import knn

__all__ = ["GrideScaling", "IntrinsicDimension", "gride_scaling", "intrinsic_dimension"]

_METHODS = ("twonn", "gride", "mle", "pr")
_TWONN_FITS = ("ml", "linear")
# Default relative tolerance for near-duplicates (see ``_neighbour_distances``).
_DEFAULT_DUPLICATE_RTOL = 1e-3


@dataclass(frozen=True)
class IntrinsicDimension:
    """Result of :func:`intrinsic_dimension`.

    Attributes
    ----------
    dimension : float
        The estimate.
    error : float or None
        Standard error where the method defines one (TwoNN maximum likelihood and GRIDE:
        inverse square root of the Fisher information), else None.
    method : str
        ``"twonn"``, ``"gride"``, ``"mle"`` or ``"pr"``.
    n_used : int
        Number of rows the estimate used (after dropping duplicates).
    n_duplicates : int
        Number of rows dropped as duplicates or near-duplicates.
    params : dict
        The method's settings with defaults filled in, e.g. ``{"n1": 16, "n2": 32, ...}``.
    """

    dimension: float
    error: float | None
    method: str
    n_used: int
    n_duplicates: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GrideScaling:
    """Result of :func:`gride_scaling`: the GRIDE estimate at doubling neighbour ranks.

    Attributes
    ----------
    n1, n2 : ndarray of shape (n_scales,)
        Neighbour ranks of each estimate, ``n1 = 1, 2, 4, ...`` and ``n2 = 2 * n1``.
    dimensions : ndarray of shape (n_scales,)
        Maximum-likelihood dimension at each scale.
    errors : ndarray of shape (n_scales,)
        Standard errors from the Fisher information.
    scales : ndarray of shape (n_scales,)
        Distance scale of each estimate: mean of the ``n1``-th and ``n2``-th neighbour
        distances over all points (the quantity DADApy reports).
    n_used : int
        Number of rows used (after dropping duplicates).
    n_duplicates : int
        Number of rows dropped as duplicates or near-duplicates.
    """

    n1: np.ndarray
    n2: np.ndarray
    dimensions: np.ndarray
    errors: np.ndarray
    scales: np.ndarray
    n_used: int
    n_duplicates: int


def _neighbour_distances(
    X: np.ndarray | torch.Tensor,
    k: int,
    *,
    rtol: float,
    working_memory: float | None,
    device: str | torch.device | None,
    why: str,
) -> tuple[np.ndarray, int]:
    """Distances (float64, ascending) to the ``k`` nearest neighbours, duplicates dropped.

    Two rows are near-duplicates when their distance is at most ``rtol`` times the median
    nearest-neighbour distance. Near-duplicate pairs among the neighbour lists are joined into
    groups (connected components), the first row of each group is kept, and the neighbours are
    searched again; this repeats until no such pair is left (the median is taken afresh each
    time, so that data made mostly of duplicates are handled too). Every pass drops at least
    one row (a row is never its own neighbour), so the loop ends.

    Returns the distances of the rows kept and the number of rows dropped.
    """
    n_start = X.shape[0]
    while True:
        n = X.shape[0]
        if n <= k:
            raise UndefinedMeasureError(
                f"{why} needs at least {k + 1} distinct samples; X has {n_start} rows of which "
                f"{n_start - n} are duplicates or near-duplicates, leaving {n}."
            )
        neighbours = knn(X, k=k, working_memory=working_memory, device=device)
        distances = neighbours.distances
        tolerance = rtol * float(np.median(distances[:, 0]))
        close = distances <= tolerance
        if not close.any():
            break
        rows, ranks = np.nonzero(close)
        cols = neighbours.indices[rows, ranks]
        graph = sparse.coo_matrix((np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        _, first = np.unique(labels, return_index=True)
        if first.size == n:  # every pass must drop a row, or the loop would never end
            raise RuntimeError(
                f"{why}: the neighbour search listed rows as their own near-duplicates "
                f"({n} rows); the distances are not consistent."
            )
        X = take_rows(X, np.sort(first))
    n_duplicates = n_start - X.shape[0]
    if n_duplicates:
        warnings.warn(
            f"{n_duplicates} of {n_start} rows of X are duplicates or near-duplicates of other "
            f"rows (distance <= {rtol:g} x the median nearest-neighbour distance); dropped "
            f"them, keeping one row per group ({X.shape[0]} rows used).",
            UserWarning,
            stacklevel=3,
        )
    return distances, n_duplicates


def _check_option(value: Any, name: str, method: str, used_by: str, default: Any) -> Any:
    if value is None:
        return default
    if method != used_by:
        raise ValueError(
            f"{name} applies to method={used_by!r} only; got it with method={method!r}."
        )
    return value


def intrinsic_dimension(
    X: np.ndarray | torch.Tensor,
    *,
    method: Literal["twonn", "gride", "mle", "pr"] = "twonn",
    fit: Literal["ml", "linear"] | None = None,
    discard_fraction: float | None = None,
    n1: int | None = None,
    n_neighbors: int | None = None,
    duplicate_rtol: float = _DEFAULT_DUPLICATE_RTOL,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
) -> IntrinsicDimension:
    r"""Estimate the intrinsic dimension of a point cloud.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Points, one per row; any float dtype (distances are computed in float32 or float64,
        never in half precision).
    method : {"twonn", "gride", "mle", "pr"}, default="twonn"
        ``"twonn"``: ratio of second to first neighbour distance (Facco et al. 2017);
        ``"gride"``: ratio of the ``2 n1``-th to the ``n1``-th neighbour distance (Denti et
        al. 2022); ``"mle"``: Levina-Bickel maximum likelihood over ``n_neighbors`` neighbours;
        ``"pr"``: participation ratio of the covariance eigenvalues (a linear dimension).
    fit : {"ml", "linear"}, default="ml"
        TwoNN only. ``"ml"``: maximum likelihood ``(N - 1) / sum(log mu)``; ``"linear"``: the
        least-squares line through the origin of ``-log(1 - F(mu))`` against ``log mu`` after
        discarding the largest ``discard_fraction`` of the ratios (DADApy's ``"base"``).
    discard_fraction : float, default=0.1
        TwoNN with ``fit="linear"`` only: share of the largest ratios left out of the fit.
    n1 : int, default=16
        GRIDE only: the lower neighbour rank; the upper one is ``n2 = 2 * n1``. Rank 16/32 is
        where the layer-wise ID curves of the abstraction-phase literature are read.
    n_neighbors : int, default=20
        MLE only: neighbours per point.
    duplicate_rtol : float, default=1e-3
        Rows closer than ``duplicate_rtol`` times the median nearest-neighbour distance are
        near-duplicates, and all but one row of each group are dropped; ``0`` catches exact
        duplicates only. Raise it (e.g. to 0.05) for activations whose repeated inputs differ by
        half-precision compute noise. Not used by ``"pr"``.
    working_memory : float, optional
        Memory budget in MiB for the blocked neighbour search (and the ``"pr"`` blocks).
    device : str or torch.device, optional
        Where to compute the neighbours (default: X's device for a tensor, else the CPU).

    Returns
    -------
    IntrinsicDimension
        Frozen result with ``dimension``, ``error`` (None for the TwoNN linear fit, MLE and PR),
        ``method``, ``n_used``, ``n_duplicates`` and ``params``.

    Raises
    ------
    ValueError
        If X is not a finite 2-D array, has too few (distinct) rows for the method (e.g. GRIDE
        needs more than ``2 * n1``), or an option is out of range or given to another method.

    Warns
    -----
    UserWarning
        When duplicate or near-duplicate rows were dropped; the message gives how many.

    See Also
    --------
    gride_scaling : GRIDE at n1 = 1, 2, 4, ... in one neighbour search.

    Notes
    -----
    TwoNN: with :math:`\mu_i = r_{i,2} / r_{i,1}`, :math:`\log\mu` is exponential with rate
    :math:`d`, and :math:`\hat d = (N-1) / \sum_i \log \mu_i` (the unbiased form, as DADApy's
    ``"ml"``); its error :math:`\hat d / \sqrt N` is the Fisher error of GRIDE at ``n1 = 1``.

    GRIDE: :math:`\mu_i = r_{i,n_2} / r_{i,n_1}` has density
    :math:`d\,(\mu^d - 1)^{n_2-n_1-1} / (\mu^{(n_2-1)d+1} B(n_2-n_1, n_1))`; the score equation
    is solved by Brent's method. Unlike DADApy, ratios are not screened for outliers above
    ``20 (q95 - q50) + q50`` (near-duplicates, which cause them, are removed instead).

    MLE: local estimates :math:`m_i = (k-1) / \sum_{j<k} \log(T_{i,k} / T_{i,j})` combined by
    their harmonic mean (MacKay and Ghahramani's correction), as scikit-dimension's ``MLE``.

    PR: :math:`(\sum_j \lambda_j)^2 / \sum_j \lambda_j^2` for the covariance eigenvalues,
    from traces of the float64 covariance (or Gram) matrix, without an eigendecomposition.

    References
    ----------
    .. [1] E. Facco, M. d'Errico, A. Rodriguez, A. Laio, "Estimating the intrinsic dimension of
       datasets by a minimal neighborhood information", Sci. Rep. 7, 12140 (2017).
    .. [2] F. Denti, D. Doimo, A. Laio, A. Mira, "The generalized ratios intrinsic dimension
       estimator", Sci. Rep. 12, 20005 (2022).
    .. [3] E. Levina, P. Bickel, "Maximum likelihood estimation of intrinsic dimension",
       NeurIPS (2004).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(1000, 3)) @ np.ones((3, 50))
    >>> round(intrinsic_dimension(X, method="pr").dimension, 3)
    1.0
    """
    opts = _checked_options(method, fit, discard_fraction, n1, n_neighbors, duplicate_rtol)
    if method == "pr":
        X = check_representations(X)
        check_min_samples(
            X.shape[0], 3, "the participation ratio", "2 centred rows span a line, so it is 1"
        )
        dimension = est.participation_ratio(X, device, working_memory)
        return IntrinsicDimension(dimension, None, "pr", X.shape[0], 0, {})
    k, why = neighbour_rank(method, opts)
    X = check_representations(X, min_samples=k + 1, context=why)
    distances, n_duplicates = _neighbour_distances(
        X, k, rtol=duplicate_rtol, working_memory=working_memory, device=device, why=why
    )
    return from_distances(method, distances, n_duplicates, opts)


def _checked_options(
    method: str,
    fit: str | None,
    discard_fraction: float | None,
    n1: int | None,
    n_neighbors: int | None,
    duplicate_rtol: float,
) -> dict[str, Any]:
    """:func:`intrinsic_dimension`'s options, checked, with their defaults filled in."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    fit = _check_option(fit, "fit", method, "twonn", "ml")
    if fit not in _TWONN_FITS:
        raise ValueError(f"fit must be one of {_TWONN_FITS}; got {fit!r}.")
    if discard_fraction is not None and (method, fit) != ("twonn", "linear"):
        raise ValueError(
            "discard_fraction applies to method='twonn' with fit='linear' only; got "
            f"method={method!r}, fit={fit!r}."
        )
    discard_fraction = 0.1 if discard_fraction is None else discard_fraction
    if not 0.0 <= discard_fraction < 1.0:
        raise ValueError(f"discard_fraction must be in [0, 1); got {discard_fraction!r}.")
    n1 = check_int(_check_option(n1, "n1", method, "gride", 16), "n1", 1)
    n_neighbors = check_int(
        _check_option(n_neighbors, "n_neighbors", method, "mle", 20), "n_neighbors", 2
    )
    if not duplicate_rtol >= 0.0:
        raise ValueError(f"duplicate_rtol must be >= 0; got {duplicate_rtol!r}.")
    return {"fit": fit, "discard_fraction": discard_fraction, "n1": n1,
            "n_neighbors": n_neighbors, "duplicate_rtol": duplicate_rtol}  # fmt: skip


def neighbour_rank(method: str, opts: dict[str, Any]) -> tuple[int, str]:
    """Neighbours per point a neighbour-based ``method`` reads, and how to name that need."""
    n1, k = opts["n1"], {"twonn": 2, "gride": 2 * opts["n1"], "mle": opts["n_neighbors"]}[method]
    option = {"twonn": "TwoNN", "gride": f"GRIDE with n1={n1}", "mle": f"n_neighbors={k}"}
    return k, f"{option[method]} ({k} neighbours per point)"


def from_distances(
    method: str, distances: np.ndarray, n_duplicates: int, opts: dict[str, Any]
) -> IntrinsicDimension:
    """The estimate of a neighbour-based ``method`` from the neighbour distances of each row."""
    n_used, n1, rtol = distances.shape[0], opts["n1"], opts["duplicate_rtol"]
    error: float | None = None
    if method == "twonn":
        params: dict[str, Any] = {"fit": opts["fit"], "duplicate_rtol": rtol}
        if opts["fit"] == "ml":
            dimension, error = est.twonn_ml(distances[:, 0], distances[:, 1])
        else:
            params["discard_fraction"] = opts["discard_fraction"]
            dimension = est.twonn_linear_fit(
                distances[:, 0], distances[:, 1], opts["discard_fraction"]
            )
    elif method == "gride":
        params = {"n1": n1, "n2": 2 * n1, "duplicate_rtol": rtol}
        log_mu = np.log(distances[:, 2 * n1 - 1] / distances[:, n1 - 1])
        dimension = est.gride_ml(log_mu, n1, 2 * n1)
        error = est.gride_error(dimension, log_mu, n1, 2 * n1)
    else:
        params = {"n_neighbors": opts["n_neighbors"], "duplicate_rtol": rtol}
        dimension = est.levina_bickel(distances)
    return IntrinsicDimension(float(dimension), error, method, n_used, n_duplicates, params)


def gride_scaling(
    X: np.ndarray | torch.Tensor,
    *,
    range_max: int = 64,
    duplicate_rtol: float = _DEFAULT_DUPLICATE_RTOL,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
) -> GrideScaling:
    r"""GRIDE intrinsic dimension as a function of scale, from one neighbour search.

    Estimates at ``n1 = 1, 2, 4, ...`` with ``n2 = 2 n1``, up to the largest power of two
    ``n2 <= min(range_max, n_samples - 1)``, all on the full data set (no decimation), as
    DADApy's ``return_id_scaling_gride``. ``n1 = 1`` is the TwoNN maximum-likelihood estimate.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Points, one per row.
    range_max : int, default=64
        Largest neighbour rank used (``n2`` of the last scale); at least 2.
    duplicate_rtol : float, default=1e-3
        Rows closer than this times the median nearest-neighbour distance are near-duplicates,
        and all but one row of each group are dropped (``0``: exact duplicates only).
    working_memory : float, optional
        Memory budget in MiB for the blocked neighbour search.
    device : str or torch.device, optional
        Where to compute the neighbours.

    Returns
    -------
    GrideScaling
        ``n1``, ``n2``, ``dimensions``, ``errors`` (inverse square root of the Fisher
        information), ``scales`` (mean of the n1-th and n2-th neighbour distances), ``n_used``
        and ``n_duplicates``.

    Raises
    ------
    ValueError
        If X is not a finite 2-D array with at least 3 distinct rows, or ``range_max < 2``.

    Warns
    -----
    UserWarning
        When duplicate or near-duplicate rows were dropped; the message gives how many.

    See Also
    --------
    intrinsic_dimension : single-scale estimates (``method="gride"`` for one ``n1``).

    Notes
    -----
    The scale is the average of the ``n1``-th and ``n2``-th neighbour distances, which is what
    DADApy 0.3 returns as ``rs_scaling`` (not the ``n2``-th distance alone).

    References
    ----------
    .. [1] F. Denti, D. Doimo, A. Laio, A. Mira, "The generalized ratios intrinsic dimension
       estimator", Sci. Rep. 12, 20005 (2022).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(500, 4)) @ np.ones((4, 20))
    >>> gride_scaling(X, range_max=16).n1.tolist()
    [1, 2, 4, 8]
    """
    range_max = check_int(range_max, "range_max", 2)
    if not duplicate_rtol >= 0.0:
        raise ValueError(f"duplicate_rtol must be >= 0; got {duplicate_rtol!r}.")
    X = check_representations(X, min_samples=3, context="GRIDE (n2 = 2 needs 3 rows)")
    k = 1 << (min(range_max, X.shape[0] - 1).bit_length() - 1)
    why = f"GRIDE scaling up to rank {k}"
    distances, n_duplicates = _neighbour_distances(
        X, k, rtol=duplicate_rtol, working_memory=working_memory, device=device, why=why
    )
    n1 = 1 << np.arange(k.bit_length() - 1)
    n2 = 2 * n1
    dimensions = np.empty(n1.size)
    errors = np.empty(n1.size)
    for i, (a, b) in enumerate(zip(n1, n2, strict=True)):
        log_mu = np.log(distances[:, b - 1] / distances[:, a - 1])
        dimensions[i] = est.gride_ml(log_mu, int(a), int(b))
        errors[i] = est.gride_error(dimensions[i], log_mu, int(a), int(b))
    scales = 0.5 * (distances[:, n1 - 1].mean(axis=0) + distances[:, n2 - 1].mean(axis=0))
    return GrideScaling(n1, n2, dimensions, errors, scales, distances.shape[0], n_duplicates)
