"""Typed results of the analyses: layer curves, layer maps with best matches, ID profiles.

What the analyses produce, as frozen dataclasses, so that summaries, figures, window selection
and the command line read fields instead of picking rows out of a table (or flags out of notes).
The tidy :class:`~geomalign.analysis.ResultsTable` stays their serialisation: ``to_table()``
gives exactly the rows the analysis writes, and ``from_table(table)`` rebuilds every result of
that type from a table (e.g. one loaded from ``results.csv``), so that
``from_table(t)[i].to_table()`` returns those rows unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields

import numpy as np

from geomalign.analysis.table import Result, ResultsTable, layer_number

__all__ = [
    "CURVE_ANALYSES",
    "PHASE_ALPHA",
    "UNDEFINED_NOTE",
    "AbstractionPhase",
    "BestMatch",
    "Estimate",
    "IDProfile",
    "LayerCurve",
    "LayerMap",
]

#: Start of the notes of a value the measure cannot give on the rows read (the value is NaN).
UNDEFINED_NOTE = "undefined (NaN)"
#: Analyses whose rows are layer curves: one value per layer (two views, or one for "id-profile").
CURVE_ANALYSES = ("cross-modal", "cross-checkpoint", "tuning-change", "compare", "id-profile")
_PHASE_STATISTICS = ("peak_layer", "peak_value", "prominence", "onset", "end", "width")


@dataclass(frozen=True)
class AbstractionPhase:
    """The intrinsic-dimension peak of a profile over layers.

    Attributes
    ----------
    peak_layer : int
        Layer of the most prominent interior maximum.
    peak_value : float
        Intrinsic dimension at the peak.
    prominence : float
        Height of the peak above the higher of its two bases (scipy's prominence).
    onset, end : float
        Layers (linearly interpolated) where the profile crosses half the prominence below the
        peak, on the rising and the falling side.
    width : float
        ``end - onset``, in layers.
    """

    peak_layer: int
    peak_value: float
    prominence: float
    onset: float
    end: float
    width: float


@dataclass(frozen=True)
class Estimate:
    """One number with its calibration (``None`` where a calibration was not computed).

    ``value`` is NaN where the measure is undefined on the rows; ``undefined_reason`` then says
    why (a column of the table too), and ``notes`` start with ``"undefined (NaN): <reason>"``
    (:data:`UNDEFINED_NOTE`).
    ``seed_low``, ``seed_high`` and ``n_seeds`` are the between-seed spread of an estimate that
    stands for several checkpoints of one role (see :func:`~geomalign.analysis.seed_spread`),
    ``seed_checkpoints`` (and ``seed_checkpoints_b`` for a second role) those checkpoints.
    ``confidence`` and ``n_resamples`` are the level of ``[ci_low, ci_high]`` and the number of
    resamples it came from; ``n_null_draws`` is the number of null draws (permutations, sign
    flips or resamples) behind ``p_value``, and ``max_t_p_value`` that p-value adjusted over
    the layers of a curve (max-T). ``n_subsample`` is the size of the seeded subsample of the
    store's rows the estimate was computed on (None: every row).
    """

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    null_mean: float | None = None
    null_std: float | None = None
    p_value: float | None = None
    n_samples: int | None = None
    notes: str = ""
    undefined_reason: str = ""
    seed_low: float | None = None
    seed_high: float | None = None
    n_seeds: int | None = None
    confidence: float | None = None
    n_resamples: int | None = None
    n_null_draws: int | None = None
    max_t_p_value: float | None = None
    n_subsample: int | None = None
    seed_checkpoints: str | None = None
    seed_checkpoints_b: str | None = None

    @property
    def defined(self) -> bool:
        """Whether the value is a number (False where the measure is undefined)."""
        return not math.isnan(self.value)

    @classmethod
    def of(cls, row: Result) -> Estimate:
        """The estimate a table row holds."""
        return cls(**{name: getattr(row, name) for name in _ROW_COLUMNS})

    def row(
        self,
        *,
        analysis: str,
        measure: str,
        checkpoint: str,
        view: str,
        layer: int | None,
        statistic: str = "value",
        checkpoint_b: str | None = None,
        view_b: str | None = None,
        layer_b: int | None = None,
        kind: str | None = None,
    ) -> Result:
        """The table row of this estimate at the place the keywords name."""
        return Result(
            analysis=analysis,
            measure=measure,
            checkpoint=checkpoint,
            view=view,
            layer=layer,
            statistic=statistic,
            checkpoint_b=checkpoint_b,
            view_b=view_b,
            layer_b=layer_b,
            kind=kind,
            **self.fields(),  # type: ignore[arg-type]
        )

    def fields(self) -> dict[str, object]:
        """The row columns this estimate fills."""
        return {name: getattr(self, name) for name in _ROW_COLUMNS}


#: The fields of an Estimate, each a table column of the same name.
_ROW_COLUMNS = tuple(f.name for f in dataclass_fields(Estimate))


def _groups(rows: Iterable[Result], *columns: str) -> dict[tuple, list[Result]]:
    out: dict[tuple, list[Result]] = {}
    for r in rows:
        out.setdefault(tuple(getattr(r, c) for c in columns), []).append(r)
    return out


@dataclass(frozen=True)
class LayerCurve:
    """A measure per layer: between two views at the same layer, or of one view (an ID profile).

    Attributes
    ----------
    analysis : str
        ``"cross-modal"``, ``"cross-checkpoint"``, ``"tuning-change"``, ``"id-profile"``, ...
    measure, kind : str, str or None
        Registry name of the measure and its kind (similarity, distance, dimension).
    checkpoint, view : str
        The (first) view, ``view`` as ``"<modality>/<pooling>"``.
    checkpoint_b, view_b : str or None
        The second view; None for a one-view curve.
    layers : tuple of int
        Layer numbers (0 = embedding output), in the order of the rows.
    estimates : tuple of Estimate
        The measure at each layer.
    """

    analysis: str
    measure: str
    kind: str | None
    checkpoint: str
    view: str
    checkpoint_b: str | None
    view_b: str | None
    layers: tuple[int, ...]
    estimates: tuple[Estimate, ...]

    @property
    def values(self) -> np.ndarray:
        """The values over ``layers``, float64 (NaN where undefined)."""
        return np.array([e.value for e in self.estimates], dtype=np.float64)

    def at(self, layer: int) -> Estimate:
        """The estimate at ``layer``."""
        return self.estimates[self.layers.index(layer)]

    def to_table(self) -> ResultsTable:
        """The curve's rows (``layer_b`` = ``layer`` for two views, None for one)."""
        return ResultsTable(
            Result(
                analysis=self.analysis,
                measure=self.measure,
                checkpoint=self.checkpoint,
                view=self.view,
                layer=layer,
                checkpoint_b=self.checkpoint_b,
                view_b=self.view_b,
                layer_b=layer if self.view_b is not None else None,
                kind=self.kind,
                **estimate.fields(),  # type: ignore[arg-type]
            )
            for layer, estimate in zip(self.layers, self.estimates, strict=True)
        )

    @classmethod
    def from_table(cls, table: ResultsTable, *, analysis: str | None = None) -> list[LayerCurve]:
        """Every curve in ``table`` (of ``analysis``, or of any of :data:`CURVE_ANALYSES`)."""
        wanted = CURVE_ANALYSES if analysis is None else (analysis,)
        rows = [r for r in table if r.analysis in wanted and r.layer is not None]
        key = ("analysis", "measure", "kind", "checkpoint", "view", "checkpoint_b", "view_b")
        return [
            cls(
                analysis=part[0].analysis,
                measure=part[0].measure,
                kind=part[0].kind,
                checkpoint=part[0].checkpoint,
                view=part[0].view,
                checkpoint_b=part[0].checkpoint_b,
                view_b=part[0].view_b,
                layers=tuple(layer_number(r) for r in part),
                estimates=tuple(Estimate.of(r) for r in part),
            )
            for part in _groups(rows, *key).values()
        ]


#: The level of the phase test at which an ID peak is called clear (:attr:`IDProfile.may_be_noise`).
PHASE_ALPHA = 0.05


@dataclass(frozen=True)
class IDProfile:
    """An intrinsic-dimension profile over layers and its detected abstraction phase.

    Attributes
    ----------
    profile : LayerCurve
        The ``"id-profile"`` curve of one view.
    phase : AbstractionPhase or None
        The phase (:func:`~geomalign.analysis.detect_abstraction_phase`); None when the profile
        has no interior peak or the phase was not detected.
    phase_notes : str
        Notes of the phase rows (the rule, undefined layers left out, noise).
    detected : bool
        Whether phase detection ran (False: no ``"abstraction-phase"`` rows for the profile).
    """

    profile: LayerCurve
    phase: AbstractionPhase | None
    phase_notes: str = ""
    detected: bool = True

    @property
    def base_layer(self) -> int | None:
        """The higher of the peak's two bases: the layer its prominence is measured from.

        None without a peak. The base holds the ID ``peak_value - prominence`` (the lowest point
        between the peak and higher ground on that side).
        """
        if self.phase is None:
            return None
        target = self.phase.peak_value - self.phase.prominence
        defined = [
            (abs(e.value - target), layer)
            for layer, e in zip(self.profile.layers, self.profile.estimates, strict=True)
            if e.defined
        ]
        return min(defined)[1]

    @property
    def may_be_noise(self) -> bool:
        """Whether the peak may be noise: its phase test fails, or without one its CI overlaps
        the CI of its base layer (:attr:`base_layer`).

        Where the peak layer's row has a p-value (the phase test of
        :func:`~geomalign.analysis.id_profile.phase_p_values`: the ID there above both end
        layers, max-T over the interior layers) the peak is clear when it is at most
        :data:`PHASE_ALPHA`. Otherwise a peak counts as clear only when its whole interval lies
        above its base's interval; that rule's false calls grow with the layers (an expected 20%
        of flat 33-layer profiles of independent layer estimates), the test's do not. False when
        the profile has no peak, or neither a p-value nor CIs there.
        """
        base = self.base_layer
        if self.phase is None or base is None:
            return False
        peak, low = self.profile.at(self.phase.peak_layer), self.profile.at(base)
        if peak.p_value is not None:
            return peak.p_value > PHASE_ALPHA
        if peak.ci_low is None or low.ci_high is None:
            return False
        return peak.ci_low <= low.ci_high

    def phase_table(self) -> ResultsTable:
        """The ``"abstraction-phase"`` rows (empty when detection did not run)."""
        if not self.detected:
            return ResultsTable()
        p = self.profile
        common = dict(
            analysis="abstraction-phase",
            measure=p.measure,
            checkpoint=p.checkpoint,
            view=p.view,
            n_samples=p.estimates[0].n_samples if p.estimates else None,
            notes=self.phase_notes,
        )
        if self.phase is None:
            return ResultsTable(
                [Result(layer=None, value=math.nan, statistic="peak_layer", **common)]  # type: ignore[arg-type]
            )
        return ResultsTable(
            Result(
                layer=self.phase.peak_layer,
                value=float(getattr(self.phase, statistic)),
                statistic=statistic,
                **common,  # type: ignore[arg-type]
            )
            for statistic in _PHASE_STATISTICS
        )

    def to_table(self) -> ResultsTable:
        """The profile's rows followed by its phase rows."""
        table = self.profile.to_table()
        table.extend(self.phase_table())
        return table

    @classmethod
    def from_table(cls, table: ResultsTable) -> list[IDProfile]:
        """Every ID profile in ``table``, each with its phase rows when the table has them."""
        phases = _groups(
            (r for r in table if r.analysis == "abstraction-phase"), "measure", "checkpoint", "view"
        )
        out = []
        for curve in LayerCurve.from_table(table, analysis="id-profile"):
            rows = phases.get((curve.measure, curve.checkpoint, curve.view), [])
            stats = {r.statistic: r.value for r in rows}
            phase = None
            if rows and math.isfinite(stats.get("peak_layer", math.nan)):
                phase = AbstractionPhase(
                    peak_layer=int(stats["peak_layer"]),
                    **{s: float(stats[s]) for s in _PHASE_STATISTICS[1:]},
                )
            notes = rows[0].notes if rows else ""
            out.append(cls(curve, phase, notes, detected=bool(rows)))
        return out


@dataclass(frozen=True)
class BestMatch:
    """The layer of the second view that best matches one layer of the first view.

    ``layer_b`` is None where no layer is defined; ``estimate`` holds the best score, the null of
    the best score (max over layers) and its p-value; ``stability`` the share of half-samples
    whose best layer is the same (None when not resampled), with ``stability_notes``.
    """

    layer: int
    layer_b: int | None
    estimate: Estimate
    stability: float | None = None
    stability_notes: str = ""


@dataclass(frozen=True, eq=False)
class LayerMap:
    """A measure between every layer of one view and every layer of another.

    Attributes
    ----------
    measure, kind : str, str or None
    checkpoint, view, checkpoint_b, view_b : str
        The two views (rows: the first, columns: the second).
    layers_a, layers_b : tuple of int
        Layer numbers of the rows and columns.
    values : numpy.ndarray of shape (len(layers_a), len(layers_b))
        The measure, NaN where undefined.
    notes : numpy.ndarray of str, same shape
        Notes of each cell.
    n_samples : int or None
    best : tuple of BestMatch
        One per layer of ``layers_a`` (empty when the table had no best-match rows).
    undefined_reasons : numpy.ndarray of str, same shape as ``values``, or None
        Why each undefined cell is undefined (``""`` where defined); None: no cell has a reason.
    n_subsample : int or None
        Size of the seeded subsample of the store's rows the map was computed on (None: all).
    """

    measure: str
    kind: str | None
    checkpoint: str
    view: str
    checkpoint_b: str
    view_b: str
    layers_a: tuple[int, ...]
    layers_b: tuple[int, ...]
    values: np.ndarray = field(repr=False)
    notes: np.ndarray = field(repr=False)
    n_samples: int | None
    best: tuple[BestMatch, ...] = ()
    undefined_reasons: np.ndarray | None = field(default=None, repr=False)
    n_subsample: int | None = None

    def _common(self) -> dict[str, object]:
        return dict(
            measure=self.measure,
            checkpoint=self.checkpoint,
            view=self.view,
            checkpoint_b=self.checkpoint_b,
            view_b=self.view_b,
            kind=self.kind,
            n_samples=self.n_samples,
            n_subsample=self.n_subsample,
        )

    def to_table(self) -> ResultsTable:
        """The ``"layer-map"`` cells (row-major), then the ``"best-match"`` rows."""
        common = self._common()
        reasons = self.undefined_reasons
        table = ResultsTable(
            Result(analysis="layer-map", layer=la, layer_b=lb, value=float(self.values[i, j]),
                   notes=str(self.notes[i, j]),
                   undefined_reason="" if reasons is None else str(reasons[i, j]),
                   **common)  # type: ignore[arg-type]
            for i, la in enumerate(self.layers_a)
            for j, lb in enumerate(self.layers_b)
        )  # fmt: skip
        for m in self.best:
            fields = {**common, **m.estimate.fields()}
            table.append(Result(analysis="best-match", layer=m.layer, layer_b=m.layer_b, **fields))  # type: ignore[arg-type]
            if m.stability is not None:
                fields.update(kind=None, null_mean=None, null_std=None, p_value=None,
                              n_null_draws=None, max_t_p_value=None, value=m.stability,
                              notes=m.stability_notes)  # fmt: skip
                table.append(
                    Result(analysis="best-match", layer=m.layer, layer_b=m.layer_b,
                           statistic="stability", **fields)  # type: ignore[arg-type]
                )  # fmt: skip
        return table

    @classmethod
    def from_table(cls, table: ResultsTable) -> list[LayerMap]:
        """Every layer map in ``table``, with its best matches when the table has them."""
        key = ("measure", "checkpoint", "view", "checkpoint_b", "view_b")
        matches = _groups((r for r in table if r.analysis == "best-match"), *key)
        out = []
        for k, cells in _groups((r for r in table if r.analysis == "layer-map"), *key).items():
            layers_a = tuple(dict.fromkeys(layer_number(r) for r in cells))
            layers_b = tuple(dict.fromkeys(layer_number(r, "layer_b") for r in cells))
            values = np.full((len(layers_a), len(layers_b)), np.nan)
            notes = np.full(values.shape, "", dtype=object)
            reasons = np.full(values.shape, "", dtype=object)
            for r in cells:
                i, j = layers_a.index(r.layer), layers_b.index(r.layer_b)
                values[i, j], notes[i, j], reasons[i, j] = r.value, r.notes, r.undefined_reason
            best: dict[int, BestMatch] = {}
            stability = {}
            for r in matches.get(k, []):
                if r.statistic == "stability":
                    stability[layer_number(r)] = (r.value, r.notes)
                else:
                    best[layer_number(r)] = BestMatch(layer_number(r), r.layer_b, Estimate.of(r))
            for layer, (share, why) in stability.items():
                if layer in best:
                    best[layer] = replace(best[layer], stability=share, stability_notes=why)
            measure, checkpoint, view, checkpoint_b, view_b = k
            out.append(
                cls(measure, cells[0].kind, checkpoint, view, checkpoint_b, view_b, layers_a,
                    layers_b, values, notes, cells[0].n_samples, tuple(best.values()),
                    reasons if any(reasons.flat) else None, cells[0].n_subsample)
            )  # fmt: skip
        return out
