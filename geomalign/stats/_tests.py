"""Nulls and add-one p-values: permutation, sign-flip and max-over-layers (max-T) nulls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from geomalign.stats._resampling import Grouping

__all__ = [
    "ALTERNATIVES",
    "max_null",
    "p_value",
    "permutation_null",
    "sign_flip_null",
    "sign_flip_p_value",
]

#: The alternatives :func:`p_value` accepts.
ALTERNATIVES: tuple[str, ...] = ("greater", "less", "two-sided")

Alternative = Literal["greater", "less", "two-sided"]

# Null values this close to the observed one (relative) count as ties, so that a null draw equal
# to the observation in exact arithmetic (e.g. the identity permutation) is counted despite
# rounding.
_TIE_RTOL = 1e-12


def check_alternative(alternative: str) -> str:
    """``alternative`` itself; ValueError unless it is one of :data:`ALTERNATIVES`."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {list(ALTERNATIVES)}; got {alternative!r}.")
    return alternative


def p_value(null: np.ndarray, observed: float, *, alternative: str) -> float:
    """Add-one p-value of ``observed`` against draws of its null distribution.

    Parameters
    ----------
    null : array-like of shape (n_draws,)
        The statistic under the null (permutations, sign flips, or resamples centred on the
        null value).
    observed : float
        The statistic on the data.
    alternative : {"greater", "less", "two-sided"}
        ``"greater"``: ``(1 + #{null >= observed}) / (1 + n_draws)``; ``"less"``: the same with
        ``<=``; ``"two-sided"``: twice the smaller of the two, at most 1.

    Returns
    -------
    float
        In ``[1 / (1 + n_draws), 1]``: never 0, as a p-value from finitely many null draws
        should not be.

    Notes
    -----
    A null draw within a relative ``1e-12`` of ``observed`` counts as a tie (as at least as
    extreme), so that draws equal in exact arithmetic are counted despite rounding.

    References
    ----------
    .. [1] Phipson, Smyth. Permutation p-values should never be zero. Statistical Applications
       in Genetics and Molecular Biology 9(1), 2010.

    Examples
    --------
    >>> p_value(np.array([0.1, 0.2, 0.3]), 0.25, alternative="greater")
    0.5
    """
    check_alternative(alternative)
    null = np.asarray(null, dtype=np.float64)
    tol = _TIE_RTOL * abs(observed)
    n = null.size

    def one_sided(greater: bool) -> float:
        hits = np.sum(null >= observed - tol) if greater else np.sum(null <= observed + tol)
        return float((1 + hits) / (1 + n))

    if alternative == "greater":
        return one_sided(True)
    if alternative == "less":
        return one_sided(False)
    return min(1.0, 2.0 * min(one_sided(True), one_sided(False)))


def permutation_null(
    statistic: Callable[[np.ndarray], float],
    n: int,
    n_permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``statistic(perm)`` for ``n_permutations`` random permutations ``perm`` of ``range(n)``.

    The caller's ``statistic`` applies the permutation (to one view's rows, to the labels, ...).

    Returns
    -------
    numpy.ndarray of shape (n_permutations,), float64
    """
    return np.array(
        [statistic(rng.permutation(n)) for _ in range(n_permutations)], dtype=np.float64
    )


def sign_flip_null(
    group_sums: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """Null of a sum of paired differences symmetric around zero, flipping whole groups.

    Parameters
    ----------
    group_sums : array-like of shape (n_groups,)
        Per-group sums of the differences (:meth:`Grouping.sums`); the observed statistic is
        their sum.
    n_permutations : int
        Random sign assignments.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of shape (n_permutations,)
        ``sum(signs * group_sums)`` for each random assignment of signs to groups.
    """
    group_sums = np.asarray(group_sums, dtype=np.float64)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, group_sums.shape[-1]))
    return signs @ group_sums


def sign_flip_p_value(
    differences: np.ndarray, grouping: Grouping, n_permutations: int, rng: np.random.Generator
) -> float:
    """Two-sided p-value that paired item differences are symmetric around zero.

    Whole groups are flipped together (:func:`sign_flip_null` of ``grouping.sums(differences)``);
    the statistic is the sum (equivalently the mean) of the differences, and the p-value is
    :func:`p_value` with ``alternative="two-sided"``; 1 when every difference is zero.

    Examples
    --------
    >>> singles = Grouping.from_labels([str(i) for i in range(40)])
    >>> sign_flip_p_value(np.ones(40), singles, 99, np.random.default_rng(0))
    0.02
    """
    group_sums = grouping.sums(differences)
    null = sign_flip_null(group_sums, n_permutations, rng)
    return p_value(null, float(group_sums.sum()), alternative="two-sided")


def max_null(null: np.ndarray, *, alternative: str, axis: int = -1) -> np.ndarray:
    """Null of the best of several statistics (max-T): the per-draw maximum over ``axis``.

    Comparing the best of m statistics (e.g. the best-matching of m layers) with each
    statistic's own null overstates significance; comparing it with the null of the best one
    does not. ``alternative="less"`` (smaller is more extreme, e.g. distances) takes the minimum;
    for a two-sided family pass absolute statistics with ``"greater"``.

    Examples
    --------
    >>> max_null(np.array([[0.1, 0.5], [0.4, 0.2]]), alternative="greater")
    array([0.5, 0.4])
    """
    if alternative not in ("greater", "less"):
        raise ValueError(
            f"alternative must be 'greater' or 'less' for a max-over-statistics null; got "
            f"{alternative!r} (for a two-sided family pass absolute statistics with 'greater')."
        )
    null = np.asarray(null, dtype=np.float64)
    return null.max(axis=axis) if alternative == "greater" else null.min(axis=axis)
