"""Intrinsic-dimension estimators as functions of neighbour distances (and of the covariance).

The public functions in :mod:`geomalign.metrics.intrinsic` check the input first: distances
given here are float64, positive (duplicates were removed) and ascending along each row.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import brentq

from geomalign.metrics._arrays import unit_scaled
from geomalign.metrics._errors import UndefinedMeasureError

__all__ = [
    "gride_error",
    "gride_ml",
    "levina_bickel",
    "participation_ratio",
    "twonn_linear_fit",
    "twonn_ml",
]

# Bracket of the 1-D root search for the GRIDE likelihood (as in DADApy's d0, d1).
_GRIDE_BRACKET = (1e-3, 1e3)
# The upper end is widened tenfold while the score is still negative, up to this value.
_GRIDE_MAX = 1e7
# Block size (MiB) when the participation ratio accumulates its float64 covariance.
_PR_BLOCK_MIB = 256


def twonn_ml(r1: np.ndarray, r2: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood TwoNN dimension and its Fisher-information standard error.

    ``log(r2 / r1)`` is exponential with rate ``d``; ``(N - 1) / sum(log mu)`` is the unbiased
    estimate of that rate. The error ``d / sqrt(N)`` is the GRIDE Fisher error at ``n1 = 1``.
    """
    log_mu = np.log(r2 / r1)
    n = log_mu.size
    dimension = (n - 1) / float(np.sum(log_mu))
    return dimension, dimension / np.sqrt(n)


def twonn_linear_fit(r1: np.ndarray, r2: np.ndarray, discard_fraction: float) -> float:
    """TwoNN by the straight-line fit of Facco et al. (2017).

    The ratios are sorted, the largest ``discard_fraction`` of them dropped, and
    ``-log(1 - F_emp(mu))`` regressed on ``log mu`` through the origin (least squares).
    """
    log_mu = np.sort(np.log(r2 / r1))
    n = log_mu.size
    n_kept = int(n * (1.0 - discard_fraction))
    x = log_mu[:n_kept]
    y = -np.log1p(-np.arange(1, n_kept + 1) / n)
    return float(x @ y) / float(x @ x)


def _gride_score(d: float, log_mu: np.ndarray, n1: int, n2: int) -> float:
    # Derivative of the GRIDE log-likelihood with respect to d (up to sign), written with
    # expm1 so that ratios close to 1 stay accurate:
    # log mu / (1 - mu^-d) = -log mu / expm1(-d log mu), whose limit at mu = 1 (ties) is 1 / d.
    x = d * log_mu
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(x > 0.0, log_mu / -np.expm1(-x), 1.0 / d)
    return float(np.sum((n2 - 1) * log_mu - (n2 - n1 - 1) * ratio) - (log_mu.size - 1) / d)


def gride_ml(log_mu: np.ndarray, n1: int, n2: int) -> float:
    """Maximum-likelihood GRIDE dimension from ``log(r_n2 / r_n1)`` (Denti et al. 2022).

    The likelihood of one ratio is
    ``d (mu^d - 1)^(n2 - n1 - 1) / (mu^((n2 - 1) d + 1) B(n2 - n1, n1))``; its score equation
    (with ``N - 1`` in place of ``N`` in the ``1/d`` term, which makes ``n1 = 1`` the unbiased
    TwoNN estimate) is solved by Brent's method on ``[1e-3, 1e3]``.
    """
    if n1 == 1 and n2 == 2:
        return (log_mu.size - 1) / float(np.sum(log_mu))
    low, high = _GRIDE_BRACKET
    while _gride_score(high, log_mu, n1, n2) <= 0.0:
        if high >= _GRIDE_MAX:
            raise RuntimeError(
                f"the GRIDE likelihood (n1={n1}, n2={n2}) has no maximum below d={_GRIDE_MAX:g}: "
                f"the {log_mu.size} distance ratios are too close to 1 for a finite dimension."
            )
        high *= 10.0
    return float(brentq(_gride_score, low, high, args=(log_mu, n1, n2), xtol=1e-12, rtol=1e-14))


def gride_error(dimension: float, log_mu: np.ndarray, n1: int, n2: int) -> float:
    """Standard error of the GRIDE estimate: inverse square root of the observed Fisher information.

    ``I(d) = N / d^2 + (n2 - n1 - 1) sum (log mu)^2 mu^-d / (1 - mu^-d)^2``.
    """
    x = -dimension * log_mu
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(x < 0.0, log_mu**2 * np.exp(x) / np.expm1(x) ** 2, dimension**-2.0)
    information = log_mu.size / dimension**2 + (n2 - n1 - 1) * float(np.sum(term))
    return float(information**-0.5)


def levina_bickel(distances: np.ndarray) -> float:
    """Levina-Bickel maximum-likelihood dimension with MacKay-Ghahramani averaging.

    With ``k`` neighbour distances ``T_1 <= ... <= T_k`` per point, the local estimate is
    ``m_i = (k - 1) / sum_j log(T_k / T_j)``, and the global one the harmonic mean of the ``m_i``
    (scikit-dimension's ``MLE`` with ``comb="mle"``, ``unbiased=False``).
    """
    k = distances.shape[1]
    log_sums = np.sum(np.log(distances[:, -1:] / distances[:, :-1]), axis=1)
    return (k - 1) / float(np.mean(log_sums))


def participation_ratio(
    X: np.ndarray | torch.Tensor, device: str | torch.device | None, working_memory: float | None
) -> float:
    """(sum lambda)^2 / sum lambda^2 over the covariance eigenvalues, accumulated in float64.

    Uses the smaller of the covariance (d x d) and the Gram matrix (n x n) of the centred data,
    which share their non-zero eigenvalues; the 1 / (n - 1) factor cancels.
    """
    T = torch.as_tensor(X)
    if device is not None:
        T = T.to(device)
    T, _ = unit_scaled(T)  # invariant; float64 squares of 1e200 would overflow
    n, d = T.shape
    budget = (working_memory or _PR_BLOCK_MIB) * 2**20
    mean = T.sum(dim=0, dtype=torch.float64) / n
    if n >= d:
        step = max(1, int(budget // (8 * d)))
        A = torch.zeros((d, d), dtype=torch.float64, device=T.device)
        for start in range(0, n, step):
            block = T[start : start + step].to(torch.float64) - mean
            A += block.T @ block
    else:
        step = max(1, int(budget // (8 * n)))
        A = torch.zeros((n, n), dtype=torch.float64, device=T.device)
        for start in range(0, d, step):
            block = T[:, start : start + step].to(torch.float64) - mean[start : start + step]
            A += block @ block.T
    trace = float(torch.diagonal(A).sum())
    if trace == 0.0:
        raise UndefinedMeasureError(
            f"the participation ratio is undefined for X with zero variance (all {n} rows equal)."
        )
    return trace**2 / float(A.pow(2).sum())
