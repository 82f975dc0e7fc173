"""Optimal-transport solvers behind :mod:`geomalign.metrics.ot`, with convergence checks.

The functions here take checked arrays. POT is imported inside them (``import ot`` is slow,
and old releases grabbed GPU memory at import). A solver that stops at its iteration limit
raises :class:`RuntimeError` instead of returning an inexact value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from geomalign.metrics._errors import UndefinedMeasureError
from geomalign.metrics._neighbors import as_tensor

__all__ = [
    "cost_matrix",
    "emd_plan",
    "entropic_terms",
    "gw_plan",
    "internal_distances",
    "sinkhorn_plan",
    "sliced",
]

SINKHORN_VALUES = ("divergence", "entropic", "transport")
NORMALISATIONS = ("mean", "max", "none")

# Sinkhorn stops when the L2 norm of its marginal violation is below this fraction of |b|_2.
_SINKHORN_RTOL = 1e-4

# Sinkhorn's absorption threshold per row or column of the problem (see absorption_threshold).
ABSORPTION_PER_ROW = 1e3


def absorption_threshold(n: int, m: int) -> float:
    """Scaling above which the log-stabilised Sinkhorn absorbs it into its potentials: POT's
    1e3 times the problem size.

    POT resets the scalings to ``1/n, 1/m`` after absorbing them, so at a solution ``v`` is about
    ``n``: with POT's fixed 1e3, problems of more than 1,000 rows absorb at every iteration (an
    exponential of the whole cost matrix each time), and each marginal check, which follows an
    absorption, sees the reset scalings and a plan of mass ``1/(n m)``: the iterations never stop
    (at n = 1,100: still at a marginal error of 0.03 after 600 iterations, against 20 iterations
    with this threshold). Absorbing less often leaves the iterates unchanged but for rounding.
    """
    return ABSORPTION_PER_ROW * max(n, m)


# Relative and absolute change of the Gromov-Wasserstein loss that stops its solver.
_GW_TOL = 1e-9


def _sq_distances(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of A and B (float64 tensors)."""
    D = A @ B.T
    D.mul_(-2.0).add_(A.square().sum(dim=1)[:, None]).add_(B.square().sum(dim=1)[None, :])
    return D.clamp_(min=0.0)


def cost_matrix(X: Any, Y: Any, p: float, device: torch.device) -> np.ndarray:
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


def emd_plan(M: np.ndarray, max_iter: int | None) -> np.ndarray:
    """Exact plan for cost ``M`` (uniform weights).

    The network simplex compares reduced costs with absolute tolerances (costs below about
    1e-14 come out wrong), so it is given ``M`` divided by its largest entry: the same plan.
    """
    import ot

    n, m = M.shape
    limit = max(100_000, 10 * n * m) if max_iter is None else max_iter
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    hint = f"Raise max_iter (network-simplex iterations; {limit} were allowed)."
    top = float(M.max())
    unit = M / top if top > 0.0 else M
    plan, log = _solve(lambda: ot.emd(a, b, unit, numItermax=limit, log=True), "EMD", hint)
    if log["result_code"] != 1:
        raise RuntimeError(f"EMD failed: {log['warning']}. {hint}")
    return plan


def sinkhorn_plan(
    M: np.ndarray, epsilon: float, max_iter: int | None, tol: float | None = None
) -> np.ndarray:
    """Entropic plan for cost ``M`` with regularisation ``epsilon`` (uniform weights).

    POT's log-stabilised iterations run on ``M`` and ``epsilon`` divided by the mean cost (the
    same plan), absorbing scalings above :func:`absorption_threshold`; they stop when the L2
    norm of the marginal violation is below ``tol`` (default: 1e-4 of ``|b|_2``).
    """
    import ot

    n, m = M.shape
    limit = 10_000 if max_iter is None else max_iter
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    scale = float(M.mean())
    if scale == 0.0:  # every point sits on every other point
        return np.outer(a, b)
    tol = _SINKHORN_RTOL / np.sqrt(m) if tol is None else tol
    plan, log = ot.sinkhorn(
        a, b, M / scale, epsilon / scale, method="sinkhorn_stabilized", numItermax=limit,
        stopThr=tol, tau=absorption_threshold(n, m), log=True, warn=False,
    )  # fmt: skip
    error = float(log["err"][-1]) if len(log["err"]) else float("inf")
    if not error < tol:
        raise RuntimeError(
            f"Sinkhorn did not converge in max_iter={limit} iterations (marginal error "
            f"{error:.2e} > {tol:.2e}). Raise max_iter or the regularisation (now "
            f"{epsilon / scale:g} x the mean cost)."
        )
    return plan


def entropic_terms(
    M: np.ndarray, epsilon: float, max_iter: int | None, tol: float | None
) -> tuple[float, float]:
    """``(<P, M>, epsilon * KL(P | a b^T))`` at the Sinkhorn plan P."""
    plan = sinkhorn_plan(M, epsilon, max_iter, tol)
    mass = plan[plan > 0.0]
    kl = float(np.sum(mass * np.log(mass * plan.size)))
    return float(np.sum(plan * M)), epsilon * kl


def sliced(
    X: Any,
    Y: Any,
    p: float,
    n_projections: int,
    random_state: Any,
    device: torch.device,
    projections: np.ndarray | None = None,
) -> float:
    """Sliced W_p over the columns of ``projections``, else over ``n_projections`` uniform
    random unit directions drawn from ``random_state``."""
    import ot

    if projections is None:
        rng = np.random.default_rng(random_state)
        theta = rng.normal(size=(X.shape[1], n_projections))
        theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    else:
        theta = projections
    Xt, Yt = as_tensor(X, device, torch.float64), as_tensor(Y, device, torch.float64)
    directions = as_tensor(np.asarray(theta, dtype=np.float64), device)
    return float(ot.sliced_wasserstein_distance(Xt, Yt, p=p, projections=directions))


def internal_distances(
    X: Any, name: str, device: torch.device, normalisation: str = "mean"
) -> np.ndarray:
    """Euclidean distance matrix of the rows of X (float64, CPU), divided by its mean entry
    (zero diagonal included) or its largest, or as it is (``normalisation="none"``)."""
    T = as_tensor(X, device, torch.float64)
    T = T - T.mean(dim=0)
    D = _sq_distances(T, T).sqrt_()
    D.fill_diagonal_(0.0)
    if normalisation == "none":
        return D.cpu().numpy()
    norm = float(D.mean() if normalisation == "mean" else D.max())
    if norm == 0.0:
        raise UndefinedMeasureError(
            f"{name} has all {X.shape[0]} rows equal; its distance matrix cannot be normalised."
        )
    return (D / norm).cpu().numpy()


def gw_plan(C1: np.ndarray, C2: np.ndarray, max_iter: int | None) -> tuple[np.ndarray, float]:
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
