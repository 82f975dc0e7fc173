"""How analysis points are evaluated: the measure, its permutation null and resampling CI."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from geomalign import metrics, stats
from geomalign.analysis.results import UNDEFINED_NOTE, Estimate
from geomalign.analysis.table import ResultsTable
from geomalign.metrics import Measure
from geomalign.stats._resampling import drawn_resamples

__all__ = ["Calibration", "evaluate", "paired_difference", "resolve_measures"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Calibration:
    """Calibration and sampling settings shared by every analysis.

    Parameters
    ----------
    n_permutations : int, default=0
        Permutations of the sample correspondence for the null (p-value, null mean and std) of
        two-view measures; 0 skips the null.
    n_resamples : int, default=0
        Bootstrap resamples (rows drawn with replacement) for the confidence interval; 0 skips it.
    confidence : float, default=0.95
        Confidence level of the bootstrap interval, in (0, 1).
    max_samples : int or None, default=2000
        Measures read at most this many samples, drawn without replacement with ``random_state``;
        the table's ``notes`` say so. ``cka-linear`` curves are the exception: their value is
        computed exactly over every row, streamed from disk in blocks (only their CI and null use
        the subsample). None reads every sample.
    random_state : int, default=0
        Seed of the subsample, the permutations and the resamples.
    working_memory : float, default=256
        MiB per block when streaming rows from the store.
    """

    n_permutations: int = 0
    n_resamples: int = 0
    confidence: float = 0.95
    max_samples: int | None = 2000
    random_state: int = 0
    working_memory: float = 256.0

    def __post_init__(self) -> None:
        for name in ("n_permutations", "n_resamples", "random_state"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"Calibration.{name} must be a non-negative int; got {value!r}.")
        if not 0.0 < float(self.confidence) < 1.0:
            raise ValueError(f"Calibration.confidence must lie in (0, 1); got {self.confidence!r}.")
        if self.max_samples is not None and (
            isinstance(self.max_samples, bool)
            or not isinstance(self.max_samples, (int, np.integer))
            or self.max_samples < 4
        ):
            raise ValueError(
                f"Calibration.max_samples must be an int >= 4 or None; got {self.max_samples!r}."
            )
        if not float(self.working_memory) > 0:
            raise ValueError(
                f"Calibration.working_memory must be positive (MiB); got {self.working_memory!r}."
            )


def resolve_measures(
    measures: Sequence[str | Measure] | str | Measure, *, n_views: int, purpose: str
) -> list[Measure]:
    """The measures ``measures`` name (registry names or :class:`Measure` objects), each checked
    to take ``n_views`` views."""
    if isinstance(measures, str | Measure):
        measures = [measures]
    measures = list(measures)
    if not measures:
        raise ValueError(f"{purpose}: no measures given; available: {metrics.available()}.")
    out = []
    for given in measures:
        measure = metrics.resolve(given)
        if measure.n_views != n_views:
            need = "two views (X, Y)" if n_views == 2 else "one view (X)"
            raise ValueError(
                f"{purpose}: measure {measure.name!r} ({measure.kind}) takes {measure.n_views} "
                f"view(s); this analysis needs measures of {need}. Measures of that kind: "
                f"{[m for m in metrics.available() if metrics.get(m).n_views == n_views]}."
            )
        out.append(measure)
    return out


@contextmanager
def warnings_to_notes(notes: list[str]) -> Iterator[None]:
    """Turn the UserWarnings measures emit (e.g. duplicate rows dropped) into a table note.

    The first message is kept whole; repeats from resamples are counted. Other warning
    categories pass through unchanged.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    messages = []
    for w in caught:
        if issubclass(w.category, UserWarning):
            messages.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if messages:
        more = f" (+{len(messages) - 1} warnings in resamples)" if len(messages) > 1 else ""
        notes.append(f"warning: {messages[0]}{more}")


def identical_rows(V: np.ndarray, name: str) -> str:
    """``"all n rows of <name> are identical"`` when they are, else ``""``."""
    if V.shape[0] > 1 and bool((V == V[0]).all()):
        return f"all {V.shape[0]} rows of {name} are identical"
    return ""


def attempt(
    func: Callable[[], T],
    views: Sequence[np.ndarray],
    names: Sequence[str],
    *,
    resamples: bool = False,
) -> tuple[T | None, str]:
    """``(func(), "")``, or ``(None, reason)`` when func's measure is undefined on ``views``.

    Only :class:`~geomalign.metrics.UndefinedMeasureError` (the rows themselves leave the
    measure undefined) is turned into a reason, naming the view whose rows are all identical
    when there is one; every other error propagates. With ``resamples=True`` (``func``
    evaluates the measure on resamples of rows on which it has already been evaluated with the
    same settings) every ValueError is such a reason: the arguments were accepted on the full
    rows, so only the resampled rows (fewer of them, e.g. a half-sample below GRIDE's scale, or
    repeated ones) can be what the measure rejects.
    """
    caught = ValueError if resamples else metrics.UndefinedMeasureError
    try:
        return func(), ""
    except caught as error:
        for V, name in zip(views, names, strict=True):
            if reason := identical_rows(V, name):
                return None, reason
        return None, str(error)


def log_undefined(table: ResultsTable, what: str) -> None:
    """Log which layers of ``table`` hold undefined values, one warning per measure."""
    for measure in table.unique("measure"):
        rows = [r for r in table.select(measure=measure) if Estimate.of(r).undefined_reason]
        if rows:
            logger.warning(
                "%s, %s: layers %s %s: %s",
                what,
                measure,
                sorted({r.layer for r in rows if r.layer is not None}),
                UNDEFINED_NOTE,
                Estimate.of(rows[0]).undefined_reason,
            )


def evaluate(
    measure: Measure,
    X: np.ndarray,
    Y: np.ndarray | None,
    calibration: Calibration,
    *,
    names: tuple[str, ...] = ("X", "Y"),
    nulls: list[np.ndarray] | None = None,
    resamples: list[np.ndarray] | None = None,
) -> Estimate:
    """The measure on (X, Y) (or X alone), with the null and CI the calibration asks for.

    The null is :func:`geomalign.stats.permutation_test` (two-view measures that use the
    pairing only), the CI :func:`geomalign.stats.bootstrap_ci` (its resampling rule per
    measure: the bootstrap, or half-sampling for neighbourhood-based measures). Where the
    measure is undefined on the rows (a view with all rows identical, too few distinct rows
    for an intrinsic dimension), the value is NaN and the notes, which start with
    :data:`UNDEFINED_NOTE`, say why (``names`` name the views there); where it is undefined on
    a resample only, the CI is left out with a note. The permutation null is appended to
    ``nulls`` when given: with the same calibration, draw ``i`` permutes the rows alike at every
    layer of a curve, so that the nulls of its layers form a joint null (max-T). Likewise the
    resampled values behind the CI are appended to ``resamples`` when given: resample ``i``
    holds the same rows at every layer.
    """
    notes: list[str] = []
    with warnings_to_notes(notes):
        point = _evaluate(measure, X, Y, calibration, notes, names, nulls, resamples)
    return replace(point, notes="; ".join(notes))


def _evaluate(
    measure: Measure,
    X: np.ndarray,
    Y: np.ndarray | None,
    calibration: Calibration,
    notes: list[str],
    names: tuple[str, ...],
    nulls: list[np.ndarray] | None,
    resamples: list[np.ndarray] | None,
) -> Estimate:
    views = (X,) if Y is None else (X, Y)
    names = names[: len(views)]
    value, why = attempt(lambda: float(measure(*views)), views, names)
    if value is None:
        notes.append(f"{UNDEFINED_NOTE}: {why}")
        return Estimate(math.nan, undefined_reason=why)
    point = Estimate(value)
    if calibration.n_permutations and Y is not None and measure.paired:
        perm = stats.permutation_test(
            measure,
            X,
            Y,
            n_permutations=calibration.n_permutations,
            random_state=calibration.random_state,
        )
        point = replace(
            point,
            null_mean=perm.null_mean,
            null_std=perm.null_std,
            p_value=perm.p_value,
            n_null_draws=perm.n_permutations,
        )
        notes.append(f"permutation null K={perm.n_permutations} ({perm.alternative})")
        if nulls is not None:
            nulls.append(perm.null)
    elif calibration.n_permutations and Y is not None:
        notes.append("no permutation null: the measure ignores the pairing of rows")
    if calibration.n_resamples:
        boot, why = attempt(
            lambda: stats.bootstrap_ci(
                measure,
                *views,
                n_resamples=calibration.n_resamples,
                confidence=float(calibration.confidence),
                random_state=calibration.random_state,
                value=value,
            ),
            views,
            names,
            resamples=True,
        )
        if boot is None:
            notes.append(f"no CI: undefined on a resample ({why})")
        else:
            point = replace(
                point,
                ci_low=boot.ci_low,
                ci_high=boot.ci_high,
                confidence=boot.confidence,
                n_resamples=boot.n_resamples,
            )
            notes.append(f"{boot.confidence:.0%} CI: {boot.resampling} B={boot.n_resamples}")
            if resamples is not None:
                resamples.append(boot.resamples)
    if notes:
        notes.append(f"seed={calibration.random_state}")
    return point


def paired_difference(
    measure: Measure,
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    calibration: Calibration,
    *,
    names: tuple[str, ...] = ("X1", "Y1", "X2", "Y2"),
    draws: list[np.ndarray] | None = None,
) -> Estimate:
    """``m(*first) - m(*second)`` on the same samples, with a paired half-sampling CI and p-value.

    Each resample draws ``n // 2`` rows without replacement and uses them in both terms, so
    variation common to both cancels (:func:`geomalign.stats.resample_indices`,
    half-sampling). The resampled differences are centred on the full-sample difference
    (:func:`geomalign.stats.centred_resamples`, ``d = d* - mean(d*) + value``) and the interval
    is between their quantiles (:func:`geomalign.stats.interval`); by the finite-population
    correction a half-sample statistic varies about as much as the full-sample one.
    Half-sampling is used for every measure, not only for the neighbourhood ones
    :func:`geomalign.stats.bootstrap_ci` half-samples: rows repeated by an ordinary bootstrap
    also inflate biased CKA between unrelated views, which shifts one term of the difference and
    not the other. The p-value is two-sided for a zero difference, :func:`geomalign.stats.p_value`
    of 0 against the centred differences: ``min(1, 2 min(#(d <= 0) + 1, #(d >= 0) + 1) / (B +
    1))``. Where a term is undefined on the
    rows, the difference is NaN with a note, as in :func:`evaluate` (``names`` name the views);
    where it is undefined on a resample only, the CI and p-value are left out with a note.

    The centred differences ``d* - mean(d*)`` (the p-value's null draws) are appended to
    ``draws`` when given. The half-samples depend only on ``calibration.random_state`` and the
    number of rows, so at every layer of a curve resample ``i`` holds the same rows: the draws
    of its layers form a joint null (max-T).
    """

    def diff() -> float:
        return float(measure(*first)) - float(measure(*second))

    def resampled_diffs(halves: np.ndarray) -> np.ndarray:
        return stats.resampled_values(measure, first, halves) - stats.resampled_values(
            measure, second, halves
        )

    views = (*first, *second)
    notes: list[str] = []
    boot: np.ndarray | None = None
    with warnings_to_notes(notes):
        value, why = attempt(diff, views, names)
        if value is not None and calibration.n_resamples:
            halves = drawn_resamples(
                first[0].shape[0],
                calibration.n_resamples,
                scheme="half-sampling",
                random_state=calibration.random_state,
            )
            boot, why = attempt(
                lambda: resampled_diffs(halves),
                views,
                names,
                resamples=True,
            )
    if value is None:
        return Estimate(
            math.nan, notes="; ".join([f"{UNDEFINED_NOTE}: {why}", *notes]), undefined_reason=why
        )
    if boot is None:
        if why:
            notes.insert(0, f"no CI: undefined on a resample ({why})")
        return Estimate(value, notes="; ".join(notes))
    low, high = stats.interval(value, boot, confidence=float(calibration.confidence))
    p_value = stats.p_value(stats.centred_resamples(boot, value), 0.0, alternative="two-sided")
    if draws is not None:
        draws.append(boot - boot.mean())
    notes.insert(
        0,
        f"{calibration.confidence:.0%} CI: paired half-sampling "
        f"B={calibration.n_resamples} seed={calibration.random_state}",
    )
    return Estimate(
        value, low, high, p_value=p_value, notes="; ".join(notes),
        confidence=float(calibration.confidence), n_resamples=len(boot), n_null_draws=len(boot),
    )  # fmt: skip


def better(kind: str) -> int:
    """+1 when larger values mean more alike (similarity), -1 when smaller do (distance)."""
    if kind == "similarity":
        return 1
    if kind == "distance":
        return -1
    raise ValueError(f"expected a similarity or distance measure; got kind {kind!r}.")
