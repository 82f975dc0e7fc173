"""Optimal-transport comparisons of two point clouds, through POT.

POT is imported inside the functions (``import ot`` is slow, and old releases grabbed GPU memory
at import). Every solver's convergence is checked: a solver that stops at its iteration limit
raises :class:`RuntimeError` instead of returning an inexact value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._neighbors import as_tensor, resolve_device

__all__ = ["gromov_wasserstein", "ot_distance", "ot_matching_accuracy"]

_METHODS = ("emd", "sinkhorn", "sliced")
_PLAN_METHODS = ("emd", "sinkhorn", "gromov-wasserstein")
# Sinkhorn stops when the L2 norm of its marginal violation is below this fraction of |b|_2.
_SINKHORN_RTOL = 1e-4
# Relative and absolute change of the Gromov-Wasserstein loss that stops its solver.
_GW_TOL = 1e-9


def _check_number(value: Any, name: str, minimum: float, *, strict: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not (value > minimum if strict else value >= minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a number {relation} {minimum:g}; got {value!r}.")
    return float(value)


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def _check_same_width(X: Any, Y: Any, method: str) -> None:
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"method={method!r} needs X and Y of the same width (a cost between their rows); got "
            f"X.shape={tuple(X.shape)}, Y.shape={tuple(Y.shape)}. Use gromov_wasserstein for "
            "spaces of different widths."
        )


def _sq_distances(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of A and B (float64 tensors)."""
    D = A @ B.T
    D.mul_(-2.0).add_(A.square().sum(dim=1)[:, None]).add_(B.square().sum(dim=1)[None, :])
    return D.clamp_(min=0.0)


def _cost_matrix(X: Any, Y: Any, p: float, device: torch.device) -> np.ndarray:
    """``|x_i - y_j|^p`` in float64, computed on ``device``, returned on the CPU.

    Both clouds are first shifted by their common mean: the cost does not change, and the
    Gram-expansion of the squared distances loses less to cancellation.
    """
    A, B = as_tensor(X, device, torch.float64), as_tensor(Y, device, torch.float64)
    shift = (A.sum(dim=0) + B.sum(dim=0)) / (A.shape[0] + B.shape[0])
    D = _sq_distances(A - shift, B - shift)
    return (D if p == 2.0 else D.sqrt_().pow_(p)).cpu().numpy()


def _solve(solver: Callable[[], Any], what: str, hint: str) -> Any:
    """Run a POT solver; its non-convergence warnings become a RuntimeError, others pass on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = solver()
    for w in caught:
        if "numItermax" in str(w.message) or "did not converge" in str(w.message):
            raise RuntimeError(f"{what} did not converge ({w.message}). {hint}")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _emd_plan(M: np.ndarray, max_iter: int | None) -> np.ndarray:
    import ot

    n, m = M.shape
    limit = max(100_000, 10 * n * m) if max_iter is None else max_iter
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    hint = f"Raise max_iter (network-simplex iterations; {limit} were allowed)."
    plan, log = _solve(
        lambda: ot.emd(a, b, M, numItermax=limit, log=True), "EMD", hint
    )
    if log["result_code"] != 1:
        raise RuntimeError(f"EMD failed: {log['warning']}. {hint}")
    return plan


def _sinkhorn_plan(M: np.ndarray, reg: float, max_iter: int | None) -> np.ndarray:
    import ot

    n, m = M.shape
    limit = 10_000 if max_iter is None else max_iter
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    scale = float(M.mean())
    if scale == 0.0:  # every point of X sits on every point of Y
        return np.outer(a, b)
    tol = _SINKHORN_RTOL / np.sqrt(m)
    plan, log = ot.sinkhorn(
        a, b, M / scale, reg, method="sinkhorn_stabilized", numItermax=limit, stopThr=tol,
        log=True, warn=False,
    )  # fmt: skip
    error = float(log["err"][-1]) if len(log["err"]) else float("inf")
    if not error < tol:
        raise RuntimeError(
            f"Sinkhorn did not converge in max_iter={limit} iterations (marginal error "
            f"{error:.2e} > {tol:.2e}). Raise max_iter or reg (now {reg:g} x the mean cost)."
        )
    return plan


def _sliced(X: Any, Y: Any, p: float, n_projections: int, random_state: Any, device) -> float:
    import ot

    rng = np.random.default_rng(random_state)
    theta = rng.normal(size=(X.shape[1], n_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    Xt, Yt = as_tensor(X, device, torch.float64), as_tensor(Y, device, torch.float64)
    projections = as_tensor(theta, device)
    return float(ot.sliced_wasserstein_distance(Xt, Yt, p=p, projections=projections))


def ot_distance(
    X: Any,
    Y: Any,
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
        ``"sinkhorn"``: entropic transport; ``"sliced"``: sliced Wasserstein over random
        directions.
    p : float, default=2.0
        Order: the ground cost is :math:`\|x - y\|^p`.
    reg : float, default=0.05
        Sinkhorn only: entropic regularisation relative to the cost scale. The cost matrix is
        divided by its mean entry before solving, so ``reg`` is a fraction of the mean cost.
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
        For ``"sinkhorn"``, the p-th root of the transport cost :math:`\langle P_\varepsilon, C
        \rangle` of the entropic plan (without the entropy term; it exceeds the exact value
        and is positive even for equal clouds). For ``"sliced"``,
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

    Sinkhorn solves the same problem with :math:`+\, \varepsilon \bar C \sum P \log P`, where
    :math:`\varepsilon` is ``reg`` and :math:`\bar C` the mean cost, with POT's log-stabilised
    iterations (safe for small ``reg``), until the L2 norm of the marginal violation is below
    1e-4 of :math:`\|b\|_2`.

    References
    ----------
    .. [1] R. Flamary et al., "POT: Python Optimal Transport", JMLR 22(78) (2021).
    .. [2] M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport",
       NeurIPS (2013).

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
        max_iter = _check_count(max_iter, "max_iter")
    n_projections = _check_count(n_projections, "n_projections")
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    _check_same_width(X, Y, method)
    dev = resolve_device(X, device)
    if method == "sliced":
        return _sliced(X, Y, p, n_projections, random_state, dev)
    M = _cost_matrix(X, Y, p, dev)
    plan = _emd_plan(M, max_iter) if method == "emd" else _sinkhorn_plan(M, reg, max_iter)
    return float(np.sum(plan * M)) ** (1.0 / p)


def _internal_distances(X: Any, name: str, device: torch.device) -> np.ndarray:
    """Euclidean distance matrix of the rows of X, divided by its mean entry (float64, CPU)."""
    T = as_tensor(X, device, torch.float64)
    T = T - T.mean(dim=0)
    D = _sq_distances(T, T).sqrt_()
    D.fill_diagonal_(0.0)
    mean = float(D.mean())
    if mean == 0.0:
        raise ValueError(
            f"{name} has all {X.shape[0]} rows equal; its distance matrix cannot be normalised."
        )
    return (D / mean).cpu().numpy()


def _gw_plan(C1: np.ndarray, C2: np.ndarray, max_iter: int | None) -> tuple[np.ndarray, float]:
    import ot

    n, m = C1.shape[0], C2.shape[0]
    limit = 1000 if max_iter is None else max_iter
    hint = f"Raise max_iter ({limit} conditional-gradient steps were allowed)."
    plan, log = _solve(
        lambda: ot.gromov.gromov_wasserstein(
            C1, C2, np.full(n, 1.0 / n), np.full(m, 1.0 / m), loss_fun="square_loss",
            max_iter=limit, tol_rel=_GW_TOL, tol_abs=_GW_TOL, log=True,
            numItermaxEmd=max(100_000, 10 * n * m),
        ),
        "Gromov-Wasserstein", hint,
    )  # fmt: skip
    losses = log["loss"]
    if len(losses) > limit:  # stopped by the limit: check the last step met the tolerance
        change = abs(losses[-1] - losses[-2])
        if change >= _GW_TOL and change >= _GW_TOL * abs(losses[-1]):
            raise RuntimeError(
                f"Gromov-Wasserstein did not converge: the loss still changed by {change:.2e} "
                f"at step {limit}. {hint}"
            )
    return plan, float(log["gw_dist"])


def gromov_wasserstein(
    X: Any,
    Y: Any,
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
        max_iter = _check_count(max_iter, "max_iter")
    X = check_representations(X, name="X", min_samples=2, context="Gromov-Wasserstein")
    Y = check_representations(Y, name="Y", min_samples=2, context="Gromov-Wasserstein")
    dev = resolve_device(X, device)
    _, loss = _gw_plan(_internal_distances(X, "X", dev), _internal_distances(Y, "Y", dev), max_iter)
    return float(0.5 * np.sqrt(max(loss, 0.0)))


def ot_matching_accuracy(
    X: Any,
    Y: Any,
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
        max_iter = _check_count(max_iter, "max_iter")
    X = check_representations(X, name="X", min_samples=2, context="a matching accuracy")
    Y = check_representations(Y, name="Y", min_samples=2, context="a matching accuracy")
    check_paired(X, Y)
    dev = resolve_device(X, device)
    if method == "gromov-wasserstein":
        plan, _ = _gw_plan(
            _internal_distances(X, "X", dev), _internal_distances(Y, "Y", dev), max_iter
        )
    else:
        _check_same_width(X, Y, method)
        M = _cost_matrix(X, Y, p, dev)
        if method == "emd":
            plan = _emd_plan(M, max_iter)
        else:
            plan = _sinkhorn_plan(M, reg, max_iter)
    return float(np.mean(np.argmax(plan, axis=1) == np.arange(plan.shape[0])))
