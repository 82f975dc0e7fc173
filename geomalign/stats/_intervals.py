"""Confidence intervals: the percentile interval of centred resamples (one rule for every
resampled statistic), and the t-interval of a mean over independent replicates (seeds)."""

from __future__ import annotations

import numpy as np
import scipy.stats

__all__ = ["centred_resamples", "check_confidence", "interval", "mean_interval"]


def check_confidence(confidence: object) -> float:
    """``confidence`` as a float; ValueError unless it is a number in (0, 1)."""
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float, np.floating))
        or not 0.0 < confidence < 1.0
    ):
        raise ValueError(f"confidence must be a float in (0, 1); got {confidence!r}.")
    return float(confidence)


def centred_resamples(resamples: np.ndarray, value: float) -> np.ndarray:
    """``resamples - mean(resamples) + value``: the resamples with their mean shift removed."""
    resamples = np.asarray(resamples, dtype=np.float64)
    return resamples - resamples.mean() + value


def interval(value: float, resamples: np.ndarray, *, confidence: float) -> tuple[float, float]:
    """Confidence interval of ``value`` from resampled values of the same statistic.

    The interval runs between the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    of :func:`centred_resamples`, i.e. ``value + quantiles(resamples - mean(resamples))``: the
    percentile interval shifted by the resamples' estimate of the statistic's bias,
    ``mean(resamples) - value``. The quantile at probability ``q`` of ``B`` resamples is at
    order statistic ``q (B + 1)`` (interpolated; numpy's ``"weibull"`` method), the position
    whose expected coverage of the resampling distribution is ``q``.

    Parameters
    ----------
    value : float
        The statistic on the full sample.
    resamples : array-like of shape (n_resamples,)
        The statistic on each resample (bootstrap, half-samples or cluster resamples).
    confidence : float
        Coverage, in (0, 1).

    Returns
    -------
    (low, high) : tuple of float

    Notes
    -----
    The plain percentile interval of a statistic that resampling biases can miss the estimate
    itself: a bootstrap resample repeats rows, and CKA on n = 15 samples of width 40 rises by
    about 0.09 when rows repeat, so that the 95% percentile interval excluded the full-sample
    value in 18 of 20 trials. Where resampling does not bias the statistic (a mean over
    resampled items), the shift is close to 0 and this is the percentile interval.

    The quantile position matters at the resample counts analyses use. numpy's default
    (``"linear"``, order statistic ``1 + q (B - 1)``) puts the 2.5% quantile of 99 resamples at
    order statistic 3.45, whose expected tail is 3.45 / 100: a 95% interval that covers about
    93% even when the resamples are exact draws of the sampling distribution (tuning-change
    intervals covered 0.895 in 200 simulated studies while their add-one p-value held its
    level). At ``q (B + 1)`` the interval and the add-one p-value of :func:`p_value` count the
    same tail.

    References
    ----------
    .. [1] Efron, Tibshirani. An Introduction to the Bootstrap. Chapman & Hall, 1993.
    .. [2] Hyndman, Fan. Sample quantiles in statistical packages. The American Statistician
       50(4), 1996 (definition 6).

    Examples
    --------
    >>> interval(1.0, np.array([1.5, 2.0, 2.5]), confidence=0.5)
    (0.5, 1.5)
    """
    check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0
    centred = centred_resamples(resamples, value)
    low, high = np.quantile(centred, [tail, 1 - tail], method="weibull")
    return float(low), float(high)


def mean_interval(values: object, *, confidence: float) -> tuple[float, float]:
    """Student-t confidence interval of the mean of independent replicates.

    The rule for a mean over a few independent runs, such as one score per training seed, where
    there is nothing to resample within a run: ``mean -+ t_{(1 + confidence) / 2, n - 1} s /
    sqrt(n)`` with ``s`` the standard deviation (``ddof=1``) of the ``n`` values. One value gives
    the point itself (no spread to estimate).

    Parameters
    ----------
    values : array-like of shape (n_replicates,)
        One value per replicate.
    confidence : float
        Coverage, in (0, 1).

    Returns
    -------
    (low, high) : tuple of float

    Examples
    --------
    >>> low, high = mean_interval([1.0, 2.0, 3.0], confidence=0.95)
    >>> round(low, 4), round(high, 4)
    (-0.4841, 4.4841)
    """
    check_confidence(confidence)
    values = np.asarray(values, dtype=np.float64)
    mean = float(np.mean(values))
    if values.size < 2:
        return mean, mean
    t = scipy.stats.t.ppf(0.5 + confidence / 2, values.size - 1)
    half = float(t * scipy.stats.sem(values))
    return mean - half, mean + half
