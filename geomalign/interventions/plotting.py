"""Figures of intervention effect curves and probe curves (rows of the results table).

Built with matplotlib's object-oriented API: nothing here selects a backend or opens a window.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from geomalign.analysis.table import ResultsTable

__all__ = ["plot_effect_curves", "plot_probe_curves"]

_CUMULATIVE = ("transplant-cumulative", "visual-skip")
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


def _x(rows: ResultsTable, analysis: str) -> np.ndarray:
    first, last = rows.column("layer"), rows.column("layer_b")
    if analysis == "transplant-reverse":  # s of the tuned blocks [s, L); empty: s = L
        return np.nan_to_num(first - 1.0, nan=float(np.nanmax(last)))
    if analysis in _CUMULATIVE:
        return np.nan_to_num(last, nan=0.0)
    return (first + last) / 2.0


def _panel(ax: Axes, table: ResultsTable, analysis: str, measure: str) -> None:
    rows = table.select(analysis=analysis, measure=measure, statistic="effect")
    x = _x(rows, analysis)
    effect = rows.column("value")
    colour = _PALETTE[0]
    ax.fill_between(
        x,
        rows.column("ci_low"),
        rows.column("ci_high"),
        color=colour,
        alpha=0.2,
        linewidth=0,
        label="95% CI (paired, clustered bootstrap)",
    )
    ax.plot(x, effect, color=colour, linewidth=1.5)
    significant = rows.column("p_value") < _ALPHA
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
    references = list(table.select(analysis=analysis, measure=measure, statistic="reference"))
    ax.axhline(
        0.0,
        color="#555555",
        linestyle="--",
        linewidth=1,
        label=f"{references[0].checkpoint} unchanged ({references[0].value:.3g})"
        if references
        else "no change",
    )
    if len(references) == 2:  # transplantation: the gap the full tuning opens
        gap = references[1].value - references[0].value
        ax.axhline(
            gap,
            color="#555555",
            linestyle=":",
            linewidth=1,
            label=f"{references[1].checkpoint} ({references[1].value:.3g})",
        )
    for peak in table.select(analysis=analysis, measure=measure, statistic="peak_layer"):
        if peak.ci_low is not None and peak.ci_high is not None:
            ax.axvspan(
                peak.ci_low - 0.25,
                peak.ci_high + 0.25,
                color=_PALETTE[1],
                alpha=0.08,
                label="bootstrap interval of the peak",
            )
        ax.axvline(peak.value, color=_PALETTE[1], linewidth=1, label=f"peak: layer {peak.value:g}")
    ax.set_title(_TITLES.get(analysis, analysis), fontsize=10)
    ax.set_xlabel(_XLABELS.get(analysis, "window centre (layer; block i outputs layer i + 1)"))
    ax.set_ylabel(f"change in {measure}")
    _legend_outside(ax)


def plot_effect_curves(table: ResultsTable, *, width: float = 9.0) -> Figure:
    """One panel per (analysis, measure) of an intervention table: score per layer window.

    Each panel shows the effect per window (mean paired change of the item score against the
    unmodified model) with its bootstrap band, filled markers where the paired test gives p < 0.05,
    zero (the unmodified model) and, for transplantation, the tuned model's gap as horizontal
    lines, and the peak window with its bootstrap interval in red.

    Parameters
    ----------
    table : ResultsTable
        Rows from :func:`~geomalign.interventions.transplant_curve` or
        :func:`~geomalign.interventions.visual_token_curve` (other rows are ignored).
    width : float, default=9.0
        Figure width in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel per intervention curve, stacked.
    """
    if not isinstance(table, ResultsTable):
        raise TypeError(f"table must be a ResultsTable; got {type(table).__name__}.")
    curves = list(
        dict.fromkeys(
            (r.analysis, r.measure)
            for r in table
            if r.statistic == "effect" and r.analysis in _TITLES
        )
    )
    if not curves:
        raise ValueError(
            f"table holds no intervention curve rows (analyses {sorted(_TITLES)}); got analyses "
            f"{table.unique('analysis')}."
        )
    fig, axes = _stacked_axes(len(curves), width=width, panel_height=3.2)
    for ax, (analysis, measure) in zip(axes, curves, strict=True):
        _panel(ax, table, analysis, measure)
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
        ax.set_title(f"Linear probe: {measure.split('/', 1)[-1]}", fontsize=10)
        ax.set_xlabel("layer (0 = embedding output, k = output of decoder block k)")
        ax.set_ylabel("cross-validated accuracy")
        ax.set_ylim(0.0, 1.02)
        _legend_outside(ax)
    return fig
