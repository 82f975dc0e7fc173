"""Figures of intervention effect curves (typed) and probe curves (rows of the results table).

Built with matplotlib's object-oriented API: nothing here selects a backend or opens a window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from geomalign.analysis.effect_curves import EffectCurve
from geomalign.analysis.table import ResultsTable
from geomalign.plotting import caption_title

__all__ = ["plot_effect_curves", "plot_probe_curves"]

_XLABELS = {
    "transplant-cumulative": "l: blocks [0, l) from the tuned checkpoint",
    "visual-skip": "k: image tokens skip blocks [0, k)",
    "transplant-reverse": "s: blocks [s, L) from the tuned checkpoint",
}
_TITLES = {
    "transplant-cumulative": "Two-part split, cumulative: tuned blocks [0, l), base blocks [l, L)",
    "transplant-reverse": "Two-part split: base blocks [0, s), tuned blocks [s, L)",
    "transplant-sliding": "Sliding-window layer transplantation (tuned blocks into base)",
    "visual-skip": "Image tokens skip the first blocks",
    "visual-ablate-mean": "Image-token states replaced by their mean in a window",
    "visual-ablate-zero": "Image-token states zeroed in a window",
    "visual-knockout": "Text cannot attend to image tokens in a window",
}
_ALPHA = 0.05
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _stacked_axes(n_panels: int, *, width: float, panel_height: float) -> tuple[Figure, np.ndarray]:
    """A figure of ``n_panels`` panels stacked vertically, and its axes."""
    fig = Figure(figsize=(width, panel_height * n_panels), layout="constrained")
    return fig, fig.subplots(n_panels, 1, squeeze=False)[:, 0]


def _legend_outside(ax: Axes) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _panel(ax: Axes, curve: EffectCurve) -> None:
    x = curve.positions
    effect = curve.effects
    colour = _PALETTE[0]
    ax.fill_between(
        x,
        _column(w.effect.ci_low for w in curve.windows),
        _column(w.effect.ci_high for w in curve.windows),
        color=colour,
        alpha=0.2,
        linewidth=0,
        label="CI (paired, clustered bootstrap)",
    )
    ax.plot(x, effect, color=colour, linewidth=1.5)
    significant = _column(w.effect.p_value for w in curve.windows) < _ALPHA
    ax.scatter(
        x[significant],
        effect[significant],
        color=colour,
        zorder=3,
        label=f"p < {_ALPHA} (paired sign-flip test)",
    )
    ax.scatter(
        x[~significant],
        effect[~significant],
        facecolor="white",
        edgecolor=colour,
        zorder=3,
        label=f"p >= {_ALPHA}",
    )
    references = curve.references
    ax.axhline(
        0.0,
        color="#555555",
        linestyle="--",
        linewidth=1,
        label=f"{references[0][0]} unchanged ({references[0][1].value:.3g})"
        if references
        else "no change",
    )
    if len(references) == 2:  # transplantation: the gap the full tuning opens
        gap = references[1][1].value - references[0][1].value
        ax.axhline(
            gap,
            color="#555555",
            linestyle=":",
            linewidth=1,
            label=f"{references[1][0]} ({references[1][1].value:.3g})",
        )
    peak = curve.peak
    if peak is not None:
        if peak.ci_low is not None and peak.ci_high is not None:
            ax.axvspan(
                peak.ci_low - 0.25,
                peak.ci_high + 0.25,
                color=_PALETTE[1],
                alpha=0.08,
                label="bootstrap interval of the peak",
            )
        ax.axvline(peak.value, color=_PALETTE[1], linewidth=1, label=f"peak: layer {peak.value:g}")
    effects = [w.effect for w in curve.windows]
    title = caption_title(_TITLES.get(curve.analysis, curve.analysis), effects, unit="items")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(
        _XLABELS.get(curve.analysis, "window centre (layer; block i outputs layer i + 1)")
    )
    ax.set_ylabel(f"change in {curve.measure}")
    _legend_outside(ax)


def _column(values: Iterable[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def plot_effect_curves(curves: Sequence[EffectCurve], *, width: float = 9.0) -> Figure:
    """One panel per effect curve: the effect per window of blocks.

    Each panel shows the effect per window (mean paired change of the item score against the
    unmodified model) with its bootstrap band, filled markers where the paired test gives p < 0.05,
    zero (the unmodified model) and, for transplantation, the tuned model's gap as horizontal
    lines, and the peak window with its bootstrap interval in red.

    Parameters
    ----------
    curves : sequence of EffectCurve
        From :func:`~geomalign.interventions.transplant_curve`,
        :func:`~geomalign.interventions.visual_token_curve` or
        :func:`~geomalign.interventions.intervention_effects`; a saved table gives them with
        :meth:`EffectCurve.from_table <geomalign.analysis.EffectCurve.from_table>`.
    width : float, default=9.0
        Figure width in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel per curve with at least one window, stacked.
    """
    if isinstance(curves, EffectCurve) or not all(isinstance(c, EffectCurve) for c in curves):
        raise TypeError("curves must be a sequence of EffectCurve (EffectCurve.from_table(table)).")
    drawn = [c for c in curves if c.windows]
    if not drawn:
        raise ValueError("no effect curve with windows to draw.")
    fig, axes = _stacked_axes(len(drawn), width=width, panel_height=3.2)
    for ax, curve in zip(axes, drawn, strict=True):
        _panel(ax, curve)
    return fig


def plot_probe_curves(table: ResultsTable, *, width: float = 9.0) -> Figure:
    """One panel per probed label: accuracy per layer of each view and of each transfer direction.

    Probes within a view are solid lines, transfers (trained on one view, tested on another)
    dashed; the majority-class share is the dotted chance line.

    Parameters
    ----------
    table : ResultsTable
        Rows from :func:`~geomalign.interventions.probe_curves` (other rows are ignored).
    width : float, default=9.0
        Figure width in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel per probed label, stacked.
    """
    if not isinstance(table, ResultsTable):
        raise TypeError(f"table must be a ResultsTable; got {type(table).__name__}.")
    measures = list(
        dict.fromkeys(r.measure for r in table if r.analysis in ("probe", "probe-transfer"))
    )
    if not measures:
        raise ValueError("table holds no probe rows (analysis 'probe' or 'probe-transfer').")
    fig, axes = _stacked_axes(len(measures), width=width, panel_height=3.0)
    for ax, measure in zip(axes, measures, strict=True):
        rows = table.select(measure=measure, statistic="value")
        series = dict.fromkeys((r.analysis, r.checkpoint, r.view, r.view_b) for r in rows)
        for k, (analysis, checkpoint, view, view_b) in enumerate(series):
            picked = rows.select(analysis=analysis, checkpoint=checkpoint, view=view, view_b=view_b)
            label = f"{checkpoint} {view}" if view_b is None else f"{checkpoint} {view} -> {view_b}"
            ax.plot(
                picked.column("layer"),
                picked.column("value"),
                marker="o",
                markersize=3,
                linestyle="-" if analysis == "probe" else "--",
                color=_PALETTE[k % len(_PALETTE)],
                label=label,
            )
        for chance in table.select(measure=measure, statistic="chance"):
            ax.axhline(
                chance.value,
                color="#555555",
                linestyle=":",
                linewidth=1,
                label=f"chance ({chance.checkpoint})",
            )
        title = f"Linear probe: {measure.split('/', 1)[-1]}"
        ax.set_title(caption_title(title, rows), fontsize=10)
        ax.set_xlabel("layer (0 = embedding output, k = output of decoder block k)")
        ax.set_ylabel("cross-validated accuracy")
        ax.set_ylim(0.0, 1.02)
        _legend_outside(ax)
    return fig
