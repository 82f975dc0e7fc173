"""Multiple comparisons across a family of p-values (e.g. the layers of one curve)."""

from __future__ import annotations

import numpy as np

from geomalign.stats._tests import max_null, p_value

__all__ = [
    "CORRECTIONS",
    "adjust",
    "benjamini_hochberg",
    "draws_needed",
    "holm",
    "max_t_adjusted",
    "p_value_floor",
    "standardised_max_t",
]


def _check_p_values(p_values: object) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D (one per hypothesis); got shape {p.shape}.")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p_values must lie in [0, 1] (no NaN); got {p.tolist()}.")
    return p


def holm(p_values: object) -> np.ndarray:
    """Holm's step-down adjusted p-values: family-wise error control under any dependence.

    Parameters
    ----------
    p_values : array-like of shape (m,)

    Returns
    -------
    numpy.ndarray of shape (m,)
        ``max over j <= i of min(1, (m - j) p_(j))`` in sorted order, put back in input order;
        reject where the adjusted value is at most alpha.

    References
    ----------
    .. [1] Holm. A simple sequentially rejective multiple test procedure. Scandinavian Journal
       of Statistics 6(2), 1979.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    p = _check_p_values(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def benjamini_hochberg(p_values: object) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values): false-discovery-rate control.

    Parameters
    ----------
    p_values : array-like of shape (m,)

    Returns
    -------
    numpy.ndarray of shape (m,)
        ``min over j >= i of min(1, m p_(j) / j)`` in sorted order (1-based ranks), put back in
        input order; rejecting where it is at most q controls the FDR at q for independent or
        positively dependent tests.

    References
    ----------
    .. [1] Benjamini, Hochberg. Controlling the false discovery rate. Journal of the Royal
       Statistical Society B 57(1), 1995.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.04, 0.04]
    """
    p = _check_p_values(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def max_t_adjusted(observed: object, null: object, *, alternative: str) -> np.ndarray:
    """Single-step max-T adjusted p-values (Westfall-Young) from a joint null.

    Parameters
    ----------
    observed : array-like of shape (m,)
        The m statistics (e.g. one per layer).
    null : array-like of shape (n_draws, m)
        The m statistics under each joint null draw (one permutation applied to every layer, so
        that their dependence is kept).
    alternative : {"greater", "less"}
        Which direction is extreme; for two-sided tests pass absolute statistics with
        ``"greater"``.

    Returns
    -------
    numpy.ndarray of shape (m,)
        Each statistic's add-one p-value against the null of the most extreme of all m
        (:func:`max_null`); controls the family-wise error rate.

    References
    ----------
    .. [1] Westfall, Young. Resampling-Based Multiple Testing. Wiley, 1993.

    Examples
    --------
    >>> null = np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.2]])
    >>> max_t_adjusted([0.25, 0.5], null, alternative="greater").tolist()
    [0.5, 0.25]
    """
    observed = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if observed.ndim != 1 or null.ndim != 2 or null.shape[1] != observed.size:
        raise ValueError(
            "null must have shape (n_draws, m) for m observed statistics; got observed.shape="
            f"{observed.shape}, null.shape={null.shape}."
        )
    extreme = max_null(null, alternative=alternative, axis=1)
    return np.array([p_value(extreme, t, alternative=alternative) for t in observed])


def standardised_max_t(observed: object, draws: object, *, alternative: str) -> np.ndarray:
    """Max-T adjusted p-values of statistics on different scales, from their joint null draws.

    Each statistic and its column of draws are standardised by the draws' mean and standard
    deviation (so that no layer dominates the maximum by its scale alone), then compared with
    the null of the most extreme standardised statistic (:func:`max_t_adjusted`).

    Parameters
    ----------
    observed : array-like of shape (m,)
    draws : array-like of shape (n_draws, m)
        Joint draws of the m statistics under the null: one permutation (or one resample,
        centred on the null value) applied to every statistic alike.
    alternative : {"greater", "less", "two-sided"}
        ``"two-sided"`` compares absolute standardised statistics.

    Returns
    -------
    numpy.ndarray of shape (m,)
        Family-wise adjusted p-values, each at least ``1 / (n_draws + 1)`` whatever ``m``.

    Examples
    --------
    >>> draws = np.array([[1.0, -10.0], [-1.0, 10.0], [0.0, 0.0]])
    >>> standardised_max_t([2.0, 5.0], draws, alternative="two-sided").tolist()
    [0.25, 0.75]
    """
    observed = np.asarray(observed, dtype=np.float64)
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or observed.shape != draws.shape[1:]:
        raise ValueError(
            "draws must have shape (n_draws, m) for m observed statistics; got observed.shape="
            f"{observed.shape}, draws.shape={draws.shape}."
        )
    centre, scale = draws.mean(axis=0), draws.std(axis=0)
    if not (scale > 0).all():
        raise ValueError(
            f"every statistic's draws need some spread; statistics {np.flatnonzero(scale <= 0)} "
            "have none."
        )
    z, null = (observed - centre) / scale, (draws - centre) / scale
    if alternative == "two-sided":
        z, null, alternative = np.abs(z), np.abs(null), "greater"
    return max_t_adjusted(z, null, alternative=alternative)


#: The corrections :func:`adjust` applies across a family of p-values.
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")


def adjust(p_values: object, *, method: str) -> np.ndarray:
    """Adjusted p-values of a family: ``"holm"`` (family-wise), ``"bh"`` (FDR) or ``"none"``.

    Parameters
    ----------
    p_values : array-like of shape (m,)
    method : {"holm", "bh", "none"}
        :func:`holm`, :func:`benjamini_hochberg`, or the p-values unchanged.

    Returns
    -------
    numpy.ndarray of shape (m,)

    Examples
    --------
    >>> adjust([0.01, 0.04], method="holm").tolist()
    [0.02, 0.04]
    """
    if method not in CORRECTIONS:
        raise ValueError(f"method must be one of {list(CORRECTIONS)}; got {method!r}.")
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    return _check_p_values(p_values)


def p_value_floor(n_draws: int, *, alternative: str = "greater") -> float:
    """The smallest p-value :func:`p_value` can give from ``n_draws`` null draws.

    ``1 / (n_draws + 1)`` one-sided, ``2 / (n_draws + 1)`` two-sided: 100 permutations cannot
    give less than 0.0099, 50 two-sided resamples less than 0.039.

    Examples
    --------
    >>> round(p_value_floor(100), 4), round(p_value_floor(50, alternative="two-sided"), 4)
    (0.0099, 0.0392)
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1; got {n_draws}.")
    return (2.0 if alternative == "two-sided" else 1.0) / (n_draws + 1)


def draws_needed(n_tests: int, alpha: float, *, alternative: str = "greater") -> int:
    """Null draws needed for a Holm-adjusted p-value of the best of ``n_tests`` to reach ``alpha``.

    The smallest Holm-adjusted p-value is ``n_tests * p_value_floor(n_draws)``; it is at most
    ``alpha`` from ``ceil(k n_tests / alpha) - 1`` draws (k = 2 two-sided, else 1).

    Examples
    --------
    >>> draws_needed(10, 0.05)
    199
    """
    k = 2 if alternative == "two-sided" else 1
    return max(1, int(np.ceil(k * n_tests / alpha - 1e-9)) - 1)
