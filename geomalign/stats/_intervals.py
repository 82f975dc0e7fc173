"""The one confidence-interval rule: the percentile interval of centred resamples."""

from __future__ import annotations

import numpy as np

__all__ = ["centred_resamples", "check_confidence", "interval"]


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
    (linear interpolation) of :func:`centred_resamples`, i.e. ``value + quantiles(resamples -
    mean(resamples))``: the percentile interval shifted by the resamples' estimate of the
    statistic's bias, ``mean(resamples) - value``.

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

    References
    ----------
    .. [1] Efron, Tibshirani. An Introduction to the Bootstrap. Chapman & Hall, 1993.

    Examples
    --------
    >>> interval(1.0, np.array([1.5, 2.0, 2.5]), confidence=0.5)
    (0.75, 1.25)
    """
    check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(centred_resamples(resamples, value), [tail, 1 - tail])
    return float(low), float(high)
