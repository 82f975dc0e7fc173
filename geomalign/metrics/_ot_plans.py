"""Transport plans between two clouds: the Gromov-Wasserstein discrepancy and matching accuracy."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from geomalign._validation import check_paired, check_positive_int, check_representations
from geomalign.metrics._arrays import as_tensor, resolve_device, unit_scaled
from geomalign.metrics._errors import check_min_samples
from geomalign.metrics._ot_checks import check_number, check_same_width, common_scaled
from geomalign.metrics._ot_solvers import (
    NORMALISATIONS,
    cost_matrix,
    emd_plan,
    gw_plan,
    internal_distances,
    sinkhorn_plan,
)

__all__ = ["gromov_wasserstein", "ot_matching_accuracy"]

_PLAN_METHODS = ("emd", "sinkhorn", "gromov-wasserstein")


def gromov_wasserstein(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    normalisation: Literal["mean", "max", "none"] = "mean",
    max_iter: int | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Gromov-Wasserstein distance between two clouds, possibly of different widths.

    Each cloud is described by its own Euclidean distance matrix, by default divided by its
    mean entry (so the result ignores isotropic scaling as well as rotations and
    translations); the two matrices are compared through a coupling of uniform weights.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples_x, n_features_x)
        First cloud.
    Y : array-like or torch.Tensor of shape (n_samples_y, n_features_y)
        Second cloud; its width and sample count may differ from X's.
    normalisation : {"mean", "max", "none"}, default="mean"
        Each distance matrix divided by its mean entry (zero diagonal included), by its
        largest entry (the convention of e.g. Demetci et al.'s SCOT and of POT's examples,
        ``C / C.max()``), or used as it is (Mémoli's distance between the metric spaces
        themselves: then :math:`d_{GW}(cX, cY) = c\, d_{GW}(X, Y)`).
    max_iter : int, optional
        Conditional-gradient steps allowed (default 1,000).
    device : str or torch.device, optional
        Where to compute the distance matrices (the solver runs on the CPU).

    Returns
    -------
    float
        :math:`d_{GW} = \tfrac12 \big(\min_T \sum_{ijkl} (C^X_{ik} - C^Y_{jl})^2 T_{ij}
        T_{kl}\big)^{1/2}` (Mémoli's distance; POT's ``gromov_wasserstein2`` returns the
        minimum itself, :math:`4 d_{GW}^2`). 0 for isometric clouds.

    Raises
    ------
    ValueError
        If X or Y is not a finite 2-D array.
    UndefinedMeasureError
        If a cloud has all its rows equal, or (normalised) only 2 rows: any two 2-point
        spaces are isometric once normalised, so the distance would be 0 whatever the data.
    RuntimeError
        If the solver (or an inner exact transport) stops at its iteration limit.

    See Also
    --------
    ot_distance : Wasserstein distance between clouds of the same width.

    Notes
    -----
    The problem is not convex: POT's conditional gradient starts from the product coupling
    and returns a local minimum, so the value is an upper bound on the distance.

    References
    ----------
    .. [1] F. Mémoli, "Gromov-Wasserstein distances and the metric approach to object
       matching", Found. Comput. Math. 11 (2011).
    .. [2] G. Peyré, M. Cuturi, J. Solomon, "Gromov-Wasserstein averaging of kernel and
       distance matrices", ICML (2016).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(30, 4))
    >>> gromov_wasserstein(X, 2.0 * X[:, ::-1]) < 1e-6
    True
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}; got {normalisation!r}.")
    if max_iter is not None:
        max_iter = check_positive_int(max_iter, "max_iter")
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    dev = resolve_device(X, device)
    if normalisation == "none":  # one scale for both: d_GW is in units of the rows
        A, B, exponent = common_scaled(X, Y, dev)
        for T, name in ((A, "X"), (B, "Y")):
            check_min_samples(T.shape[0], 2, f"Gromov-Wasserstein ({name})", "no distances")
    else:
        (A, _), (B, _), exponent = unit_scaled(as_tensor(X, dev)), unit_scaled(as_tensor(Y, dev)), 0
        for T, name in ((A, "X"), (B, "Y")):
            _check_gw_samples(T.shape[0], name)
    C1 = internal_distances(A, "X", dev, normalisation)
    C2 = internal_distances(B, "Y", dev, normalisation)
    _, loss = gw_plan(C1, C2, max_iter)
    return math.ldexp(float(0.5 * np.sqrt(max(loss, 0.0))), exponent)


def _check_gw_samples(n: int, name: str) -> None:
    check_min_samples(
        n, 3, f"normalised Gromov-Wasserstein ({name})",
        "any two normalised 2-point spaces are isometric",
    )  # fmt: skip


def ot_matching_accuracy(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    method: Literal["emd", "sinkhorn", "gromov-wasserstein"] = "emd",
    p: float = 2.0,
    reg: float = 0.05,
    max_iter: int | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Share of paired rows that the optimal transport plan matches to each other.

    Row i of X and row i of Y are the same stimulus (e.g. an image and its caption). The plan
    between the two clouds is computed without using the pairing, and row i counts as matched
    when the largest entry of row i of the plan is in column i. Chance level is ``1 / n``.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features_x)
        First view.
    Y : array-like or torch.Tensor of shape (n_samples, n_features_y)
        Second view, same samples in the same order.
    method : {"emd", "sinkhorn", "gromov-wasserstein"}, default="emd"
        Plan of exact transport or of Sinkhorn with cost :math:`\|x_i - y_j\|^p` (these need
        equal widths: a cost between rows of X and Y), or the Gromov-Wasserstein coupling of
        the normalised internal distance matrices (any widths).
    p : float, default=2.0
        Order of the ground cost (``"emd"``, ``"sinkhorn"``).
    reg : float, default=0.05
        Sinkhorn regularisation, relative to the mean cost (see :func:`ot_distance`).
    max_iter : int, optional
        Iteration limit of the solver (defaults as in :func:`ot_distance` and
        :func:`gromov_wasserstein`).
    device : str or torch.device, optional
        Where to build the cost matrices.

    Returns
    -------
    float
        Accuracy in [0, 1] (a similarity).

    Raises
    ------
    ValueError
        If the inputs are not finite 2-D arrays with the same number of rows, or if
        ``method`` is ``"emd"`` or ``"sinkhorn"`` and the widths differ (use
        ``method="gromov-wasserstein"`` then).
    UndefinedMeasureError
        On 1 sample, or on 2 with ``"gromov-wasserstein"`` (two normalised 2-point spaces are
        isometric both ways, so the coupling cannot tell the pairing).
    RuntimeError
        If the solver stops at its iteration limit.

    See Also
    --------
    ot_distance, gromov_wasserstein

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(40, 8))
    >>> ot_matching_accuracy(X, X + 0.01)
    1.0
    """
    if method not in _PLAN_METHODS:
        raise ValueError(f"method must be one of {_PLAN_METHODS}; got {method!r}.")
    p = check_number(p, "p", 1.0)
    reg = check_number(reg, "reg", 0.0, strict=True)
    if max_iter is not None:
        max_iter = check_positive_int(max_iter, "max_iter")
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    check_paired(X, Y)
    check_min_samples(X.shape[0], 2, "a matching accuracy", "one sample is always matched")
    dev = resolve_device(X, device)
    if method == "gromov-wasserstein":
        _check_gw_samples(X.shape[0], "X")
        (A, _), (B, _) = unit_scaled(as_tensor(X, dev)), unit_scaled(as_tensor(Y, dev))
        plan, _ = gw_plan(
            internal_distances(A, "X", dev), internal_distances(B, "Y", dev), max_iter
        )
    else:
        check_same_width(X, Y, method)
        A, B, _ = common_scaled(X, Y, dev)
        M = cost_matrix(A, B, p, dev)
        if method == "emd":
            plan = emd_plan(M, max_iter)
        else:
            plan = sinkhorn_plan(M, reg * float(M.mean()), max_iter)
    return float(np.mean(np.argmax(plan, axis=1) == np.arange(plan.shape[0])))
