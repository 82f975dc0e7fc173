"""Optimal-transport comparisons of two point clouds, through POT.

POT is imported inside the functions (``import ot`` is slow, and old releases grabbed GPU memory
at import). Every solver's convergence is checked: a solver that stops at its iteration limit
raises :class:`RuntimeError` instead of returning an inexact value.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from geomalign._validation import check_paired, check_positive_int, check_representations
from geomalign.metrics._arrays import resolve_device
from geomalign.metrics._ot_solvers import (
    cost_matrix,
    emd_plan,
    gw_plan,
    internal_distances,
    sinkhorn_divergence,
    sinkhorn_plan,
    sliced,
)

__all__ = ["gromov_wasserstein", "ot_distance", "ot_matching_accuracy"]

_METHODS = ("emd", "sinkhorn", "sliced")
_PLAN_METHODS = ("emd", "sinkhorn", "gromov-wasserstein")


def _check_number(value: Any, name: str, minimum: float, *, strict: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not (value > minimum if strict else value >= minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a number {relation} {minimum:g}; got {value!r}.")
    return float(value)


def _check_same_width(
    X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, method: str
) -> None:
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"method={method!r} needs X and Y of the same width (a cost between their rows); got "
            f"X.shape={tuple(X.shape)}, Y.shape={tuple(Y.shape)}. Use gromov_wasserstein for "
            "spaces of different widths."
        )


def ot_distance(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    method: Literal["emd", "sinkhorn", "sliced"] = "emd",
    p: float = 2.0,
    reg: float = 0.05,
    max_iter: int | None = None,
    n_projections: int = 256,
    random_state: int | np.random.Generator | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Wasserstein distance :math:`W_p` between two point clouds with uniform weights.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples_x, n_features)
        First cloud.
    Y : array-like or torch.Tensor of shape (n_samples_y, n_features)
        Second cloud, same width as X (the sample counts may differ).
    method : {"emd", "sinkhorn", "sliced"}, default="emd"
        ``"emd"``: exact optimal transport (network simplex, on the CPU, roughly cubic in n);
        ``"sinkhorn"``: debiased entropic transport (Sinkhorn divergence, three Sinkhorn
        solves); ``"sliced"``: sliced Wasserstein over random directions.
    p : float, default=2.0
        Order: the ground cost is :math:`\|x - y\|^p`.
    reg : float, default=0.05
        Sinkhorn only: entropic regularisation relative to the cost scale: the regularisation
        is ``reg`` times the mean entry of the X-to-Y cost matrix.
    max_iter : int, optional
        Iteration limit: network-simplex iterations for ``"emd"`` (default
        ``max(1e5, 10 n_x n_y)``; POT's 1e5 is already too small at 2,000 points), Sinkhorn
        iterations for ``"sinkhorn"`` (default 10,000). Not used by ``"sliced"``.
    n_projections : int, default=256
        Sliced only: number of random directions.
    random_state : int, numpy.random.Generator or None, default=None
        Sliced only: seed of the random directions.
    device : str or torch.device, optional
        Where to build the cost matrix and project for ``"sliced"`` (default: X's device for a
        tensor, else the CPU). The EMD and Sinkhorn solvers run on the CPU (POT's NumPy
        backend; its torch backend is many times slower on the CPU for these loops).

    Returns
    -------
    float
        :math:`W_p`, the p-th root of the optimal transport cost (a distance, 0 for equal clouds).
        For ``"sinkhorn"``, the p-th root of the Sinkhorn divergence :math:`S_\varepsilon`
        (0 for equal clouds, tends to :math:`W_p` as ``reg`` shrinks, a little below it for
        larger ``reg``). For ``"sliced"``,
        :math:`(\mathbb{E}_\theta W_p^p(\theta_\# X, \theta_\# Y))^{1/p}`, which is at most
        :math:`W_p`.

    Raises
    ------
    ValueError
        If X or Y is not a finite 2-D array, their widths differ, or an option is out of range.
    RuntimeError
        If EMD or Sinkhorn stops at ``max_iter`` before converging (never an inexact value).

    See Also
    --------
    gromov_wasserstein : compares clouds of different widths.
    ot_matching_accuracy : how often the plan pairs row i of X with row i of Y.

    Notes
    -----
    With uniform weights :math:`a = 1/n_x`, :math:`b = 1/n_y` and cost
    :math:`C_{ij} = \|x_i - y_j\|^p` (float64),

    .. math::
        W_p(X, Y) = \Big(\min_{P \ge 0,\, P 1 = a,\, P^T 1 = b} \langle P, C \rangle\Big)^{1/p}.

    Sinkhorn: with :math:`\varepsilon` = ``reg`` times the mean of :math:`C`,
    :math:`OT_\varepsilon(X, Y) = \min_P \langle P, C \rangle + \varepsilon\,
    \mathrm{KL}(P \,|\, a b^T)` is solved with POT's log-stabilised iterations (safe for
    small ``reg``) until the L2 norm of the marginal violation is below 1e-4 of
    :math:`\|b\|_2`, and debiased (Feydy et al. 2019):

    .. math::
        S_\varepsilon = OT_\varepsilon(X, Y)
        - \tfrac12 OT_\varepsilon(X, X) - \tfrac12 OT_\varepsilon(Y, Y).

    Without the correction the entropic blur dominates for nearby clouds (e.g. 3.9 times the
    exact W_2 for a cloud and a slightly noisy copy at ``reg=0.05``; 0.96 with it).
    :math:`S_\varepsilon \ge 0` holds for ``p`` = 1 or 2; for other ``p`` a negative value
    is clipped to 0.

    References
    ----------
    .. [1] R. Flamary et al., "POT: Python Optimal Transport", JMLR 22(78) (2021).
    .. [2] M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport",
       NeurIPS (2013).
    .. [3] J. Feydy et al., "Interpolating between optimal transport and MMD using Sinkhorn
       divergences", AISTATS (2019).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> round(ot_distance(X, X + [3.0, 4.0, 0.0]), 6)
    5.0
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    p = _check_number(p, "p", 1.0)
    reg = _check_number(reg, "reg", 0.0, strict=True)
    if max_iter is not None:
        max_iter = check_positive_int(max_iter, "max_iter")
    n_projections = check_positive_int(n_projections, "n_projections")
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    _check_same_width(X, Y, method)
    dev = resolve_device(X, device)
    if method == "sliced":
        return sliced(X, Y, p, n_projections, random_state, dev)
    if method == "sinkhorn":
        return sinkhorn_divergence(X, Y, p, reg, max_iter, dev) ** (1.0 / p)
    M = cost_matrix(X, Y, p, dev)
    return float(np.sum(emd_plan(M, max_iter) * M)) ** (1.0 / p)


def gromov_wasserstein(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    max_iter: int | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Gromov-Wasserstein distance between two clouds, possibly of different widths.

    Each cloud is described by its own Euclidean distance matrix, divided by its mean entry
    (so the result ignores isotropic scaling as well as rotations and translations); the
    two matrices are compared through a coupling of uniform weights.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples_x, n_features_x)
        First cloud.
    Y : array-like or torch.Tensor of shape (n_samples_y, n_features_y)
        Second cloud; its width and sample count may differ from X's.
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
        If X or Y is not a finite 2-D array with at least 2 rows, or all its rows are equal.
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
    if max_iter is not None:
        max_iter = check_positive_int(max_iter, "max_iter")
    X = check_representations(X, name="X", min_samples=2, context="Gromov-Wasserstein")
    Y = check_representations(Y, name="Y", min_samples=2, context="Gromov-Wasserstein")
    dev = resolve_device(X, device)
    _, loss = gw_plan(internal_distances(X, "X", dev), internal_distances(Y, "Y", dev), max_iter)
    return float(0.5 * np.sqrt(max(loss, 0.0)))


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
        If the inputs are not finite 2-D arrays with the same number of rows (at least 2), or
        if ``method`` is ``"emd"`` or ``"sinkhorn"`` and the widths differ (use
        ``method="gromov-wasserstein"`` then).
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
    p = _check_number(p, "p", 1.0)
    reg = _check_number(reg, "reg", 0.0, strict=True)
    if max_iter is not None:
        max_iter = check_positive_int(max_iter, "max_iter")
    X = check_representations(X, name="X", min_samples=2, context="a matching accuracy")
    Y = check_representations(Y, name="Y", min_samples=2, context="a matching accuracy")
    check_paired(X, Y)
    dev = resolve_device(X, device)
    if method == "gromov-wasserstein":
        plan, _ = gw_plan(
            internal_distances(X, "X", dev), internal_distances(Y, "Y", dev), max_iter
        )
    else:
        _check_same_width(X, Y, method)
        M = cost_matrix(X, Y, p, dev)
        if method == "emd":
            plan = emd_plan(M, max_iter)
        else:
            plan = sinkhorn_plan(M, float(M.mean()), reg, max_iter)
    return float(np.mean(np.argmax(plan, axis=1) == np.arange(plan.shape[0])))
