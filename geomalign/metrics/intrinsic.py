"""Intrinsic dimension of a point cloud: TwoNN, GRIDE, Levina-Bickel MLE, participation ratio.

The neighbour-based estimators (TwoNN, GRIDE, MLE) need every point's nearest neighbours at
a positive distance. Duplicate rows (and near-duplicates, rows that differ only by rounding,
as in float16 activations) make a first-neighbour distance zero and an estimate NaN or
meaningless, so they are found first and all but one row of each group dropped, with a
warning that gives the count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from geomalign._validation import check_int, check_representations
from geomalign.metrics import _id_estimators as est
from geomalign.metrics._errors import check_min_samples
from geomalign.metrics._id_inputs import (
    DEFAULT_DUPLICATE_RTOL,
    checked_options,
    neighbour_distances,
    neighbour_rank,
)

__all__ = ["GrideScaling", "IntrinsicDimension", "gride_scaling", "intrinsic_dimension"]


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


def intrinsic_dimension(
    X: np.ndarray | torch.Tensor,
    *,
    method: Literal["twonn", "gride", "mle", "pr"] = "twonn",
    fit: Literal["ml", "linear"] | None = None,
    discard_fraction: float | None = None,
    n1: int | None = None,
    n_neighbors: int | None = None,
    duplicate_rtol: float = DEFAULT_DUPLICATE_RTOL,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
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
    neighbors : {"exact", "faiss-hnsw"}, default="exact"
        Neighbour-based methods: exact search, or candidates from a faiss HNSW graph (the
        optional extra ``faiss``) for N in the millions, whose distances are then computed
        exactly; TwoNN reads the 2 nearest, GRIDE the ``2 n1`` nearest, MLE ``n_neighbors``.
        Not used by ``"pr"``.

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
    opts = checked_options(method, fit, discard_fraction, n1, n_neighbors, duplicate_rtol)
    if method == "pr":
        if neighbors != "exact":
            raise ValueError(
                f"neighbors applies to the neighbour-based methods only; got neighbors="
                f"{neighbors!r} with method='pr' (a covariance spectrum, no neighbour search)."
            )
        X = check_representations(X)
        check_min_samples(
            X.shape[0], 3, "the participation ratio", "2 centred rows span a line, so it is 1"
        )
        dimension = est.participation_ratio(X, device, working_memory)
        return IntrinsicDimension(dimension, None, "pr", X.shape[0], 0, {})
    k, why = neighbour_rank(method, opts)
    X = check_representations(X, min_samples=k + 1, context=why)
    distances, n_duplicates = neighbour_distances(
        X, k, rtol=duplicate_rtol, working_memory=working_memory, device=device, why=why,
        neighbors=neighbors,
    )  # fmt: skip
    return from_distances(method, distances, n_duplicates, opts)


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
    duplicate_rtol: float = DEFAULT_DUPLICATE_RTOL,
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
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
    neighbors : {"exact", "faiss-hnsw"}, default="exact"
        As in :func:`intrinsic_dimension` (the graph is searched for the ``range_max``
        nearest).

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
    distances, n_duplicates = neighbour_distances(
        X, k, rtol=duplicate_rtol, working_memory=working_memory, device=device, why=why,
        neighbors=neighbors,
    )  # fmt: skip
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
