"""Corrections across a family of rows: the layers of one curve, the best matches of one map.

A family's rows are tested together, so a layer is called significant only after a correction
across them. Two kinds exist:

- from the p-values alone (:func:`geomalign.stats.adjust`): Holm (family-wise), BH (false
  discovery rate) or none;
- max-T (single-step Westfall-Young), from the joint null draws behind the p-values: the same
  permutations (cross-modal curves, layer maps) or the same half-samples (tuning change) at
  every layer; each layer's statistic standardised by its permutation null
  (:func:`geomalign.stats.standardised_max_t`), resampled differences compared as they are
  (:func:`family_max_t`). The analyses give it on each row (``max_t_p_value``, and in the
  notes as ``max-T p=<p> over <m> layers``). Its smallest value is ``1 / (draws + 1)`` whatever the
  number of layers, where Holm's is ``m`` times a layer's floor: with 50 two-sided resamples
  Holm over 7 layers cannot go below 0.27, max-T reaches 0.02.

``"auto"`` (the default of :func:`~geomalign.analysis.summarize` and ``geomalign analyze``)
is max-T for a family whose every tested row carries a max-T p-value, else Holm: family-wise
control either way, by the method that uses the layers' dependence and can reach ``alpha``
with the fewest draws where the joint draws exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from geomalign import stats

__all__ = [
    "CORRECTIONS",
    "Tested",
    "adjusted",
    "check_correction",
    "family_max_t",
    "max_t_note",
    "resolve",
]

#: Corrections across a family of rows, by name.
CORRECTIONS: tuple[str, ...] = ("auto", "max-t", "holm", "bh", "none")


class Tested(Protocol):
    """A member of a family: a table row or an estimate, with its p-value and max-T p-value."""

    @property
    def p_value(self) -> float | None: ...

    @property
    def max_t_p_value(self) -> float | None: ...


def check_correction(correction: str) -> str:
    """``correction`` itself; ValueError unless it is one of :data:`CORRECTIONS`."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {list(CORRECTIONS)}; got {correction!r}.")
    return correction


def family_max_t(
    observed: Sequence[float],
    draws: Sequence[np.ndarray],
    *,
    alternative: str,
    standardise: bool = True,
) -> np.ndarray | None:
    """Max-T adjusted p-values of a family, or None where max-T does not apply.

    ``draws[i]`` are row ``i``'s joint null draws (draw ``k`` of every row from the same
    permutation or resample). With ``standardise`` each row is first standardised by its draws
    (:func:`geomalign.stats.standardised_max_t`), which suits permutation nulls: the
    standardisation is the same for the data and every permutation of it. Resampled nulls
    (centred half-samples) are compared unstandardised (:func:`geomalign.stats.max_t_adjusted`
    on absolute values for ``"two-sided"``): dividing the observed statistic by a spread
    estimated from the same data gives it heavier tails than the draws (a t-statistic against
    a normal null), which raised the family-wise error of 8 null tuning-change layers
    (``benchmarks/calibration_bench.py``). Unstandardised, a row whose draws have no spread
    takes part as it is: the layers of a tuning-change curve below a tuned window hold the same
    representations in both checkpoints, every resampled difference there is 0, and such a row
    adds nothing to the maximum (its own max-T p-value is 1 when its difference is 0). None for
    fewer than 2 rows, draws of unequal numbers, or (``standardise``) a row whose draws have no
    spread.
    """
    if len(observed) < 2 or len({d.size for d in draws}) > 1:
        return None
    joint = np.stack([np.asarray(d, dtype=np.float64) for d in draws], axis=1)
    if standardise and not (joint.std(axis=0) > 0).all():
        return None
    if standardise:
        return stats.standardised_max_t(observed, joint, alternative=alternative)
    values = np.asarray(observed, dtype=np.float64)
    if alternative == "two-sided":
        values, joint, alternative = np.abs(values), np.abs(joint), "greater"
    return stats.max_t_adjusted(values, joint, alternative=alternative)


def max_t_note(p_value: float, n_layers: int) -> str:
    """The note a row's max-T p-value is kept in."""
    return f"max-T p={p_value:.4g} over {n_layers} layers"


def _max_t(row: Tested) -> float | None:
    return row.max_t_p_value


def resolve(rows: Sequence[Tested], correction: str) -> str:
    """The correction ``correction`` stands for on ``rows``: ``"auto"`` is ``"max-t"`` when
    every row with a p-value carries a max-T p-value, else ``"holm"``."""
    check_correction(correction)
    if correction != "auto":
        return correction
    tested = [r for r in rows if r.p_value is not None]
    return "max-t" if tested and all(_max_t(r) is not None for r in tested) else "holm"


def adjusted(rows: Sequence[Tested], correction: str) -> tuple[np.ndarray, str]:
    """The adjusted p-values of ``rows`` (those with a p-value, in order) and the correction used.

    ``"max-t"`` reads each row's max-T p-value (a single row's own p-value; ValueError when
    rows of a larger family have none); the others adjust the rows' p-values
    (:func:`geomalign.stats.adjust`).
    """
    method = resolve(rows, correction)
    tested = [r for r in rows if r.p_value is not None]
    if method != "max-t":
        return stats.adjust([r.p_value for r in tested], method=method), method
    if len(tested) == 1 and _max_t(tested[0]) is None:  # a family of one needs no adjustment
        return np.array([tested[0].p_value], dtype=np.float64), method
    out = [_max_t(r) for r in tested]
    if None in out:
        raise ValueError(
            f"correction 'max-t': {out.count(None)} of the {len(out)} tested rows of a family "
            "have no max-T p-value (their layers were not drawn jointly); use 'holm' or 'auto'."
        )
    return np.array(out, dtype=np.float64), method
