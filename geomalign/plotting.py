"""Figures of a results table: layer curves with CI bands, layer x layer maps, ID profiles.

Figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``), so nothing
here selects a backend or opens a window; :func:`save_figure` writes PNG, PDF or SVG.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from geomalign.analysis.layer_maps import map_of
from geomalign.analysis.results import Estimate, IDProfile
from geomalign.analysis.table import Result, ResultsTable, layer_number

__all__ = [
    "FORMATS",
    "calibration_caption",
    "caption_title",
    "plot_curves",
    "plot_id_profiles",
    "plot_layer_map",
    "plot_results",
    "save_figure",
]

#: File formats :func:`save_figure` writes.
FORMATS = ("png", "pdf", "svg")
LAYER_AXIS = "layer (0 = embedding output, k = output of decoder block k)"
_ALPHA = 0.05
_TITLES = {
    "cross-modal": "Cross-modal alignment: image vs caption of the same samples",
    "cross-checkpoint": "Base vs tuned: same inputs, same modality",
    "tuning-change": "Change of cross-modal alignment with tuning",
}
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _colours(names: Sequence[object]) -> dict[object, str]:
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def _direction(kind: str | None) -> str:
    return {
        "similarity": "similarity: higher = more alike",
        "distance": "distance: lower = more alike",
        "dimension": "intrinsic dimension",
    }.get(kind or "", "value")


def _new_axes(ax: Axes | None, size: tuple[float, float] = (9.0, 4.2)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _legend(ax: Axes, extra: list[tuple[Any, str]]) -> None:
    """Legend outside the axes on the right: the data series, then what the symbols mean."""
    handles, labels = ax.get_legend_handles_labels()
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    ax.legend(
        handles,
        labels,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        frameon=False,
    )


def _span(values: set[Any], fmt: str = "{}") -> str:
    low, high = min(values), max(values)
    return fmt.format(low) if low == high else f"{fmt.format(low)}–{fmt.format(high)}"


def calibration_caption(rows: Iterable[Result | Estimate], *, unit: str = "samples") -> str:
    """What the intervals and values of ``rows`` rest on, e.g. ``"95% CI, 200 resamples; n = 500
    samples"``: from the ``confidence``, ``n_resamples`` and ``n_samples`` of the table rows or
    typed estimates (a range where they differ); ``""`` when they have none of them."""
    rows = list(rows)
    parts = []
    levels = {r.confidence for r in rows if r.confidence is not None}
    resamples = {r.n_resamples for r in rows if r.n_resamples is not None}
    if levels:
        parts.append(
            f"{_span(levels, '{:.0%}')} CI"
            + (f", {_span(resamples)} resamples" if resamples else "")
        )
    elif any(r.ci_low is not None for r in rows):
        parts.append("CI of unrecorded level")
    samples = {r.n_samples for r in rows if r.n_samples is not None}
    if samples:
        parts.append(f"n = {_span(samples)} {unit}")
    return "; ".join(parts)


def caption_title(title: str, rows: Iterable[Result | Estimate], *, unit: str = "samples") -> str:
    """``title`` with :func:`calibration_caption` of ``rows`` as its second line."""
    caption = calibration_caption(rows, unit=unit)
    return f"{title}\n{caption}" if caption else title


def _band(ax: Axes, x: np.ndarray, rows: ResultsTable, colour: str) -> None:
    low, high = rows.column("ci_low"), rows.column("ci_high")
    ok = np.isfinite(low) & np.isfinite(high)
    if ok.any():
        ax.fill_between(x[ok], low[ok], high[ok], color=colour, alpha=0.2, linewidth=0)


def plot_curves(
    table: ResultsTable, *, analysis: str, measure: str, ax: Axes | None = None
) -> Figure:
    """One curve over layers per compared pair of views (e.g. base and tuned on one axis).

    Bands are the resampling CIs; filled markers are points with permutation ``p < 0.05``, hollow
    markers the tested rest, small dots untested points (e.g. measures that ignore the pairing);
    the grey dotted line is the permutation-null mean.

    Parameters
    ----------
    table : ResultsTable
        Holds rows of ``analysis`` for ``measure``.
    analysis : str
        ``"cross-modal"``, ``"cross-checkpoint"``, ``"tuning-change"`` or any two-view curve.
    measure : str
        The measure to draw.
    ax : matplotlib Axes, default=None
        Draw into this axes; a new figure when None.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = table.select(analysis=analysis, measure=measure)
    if not len(rows):
        raise ValueError(
            f"no {analysis!r} rows for measure {measure!r}; the table has "
            f"{sorted({(r.analysis, r.measure) for r in table})}."
        )
    fig, ax = _new_axes(ax)
    series = list(dict.fromkeys((r.checkpoint, r.view, r.checkpoint_b, r.view_b) for r in rows))
    colours = _colours(series)
    null_drawn = False
    for key in series:
        ckpt, view, ckpt_b, view_b = key
        sel = sorted(
            rows.select(checkpoint=ckpt, view=view, checkpoint_b=ckpt_b, view_b=view_b),
            key=layer_number,
        )
        part = ResultsTable(sel)
        x, y = part.column("layer"), part.column("value")
        label = _series_label(analysis, ckpt, view, ckpt_b, view_b)
        _band(ax, x, part, colours[key])
        ax.plot(x, y, color=colours[key], label=label, linewidth=1.8)
        p = part.column("p_value")
        tested = np.isfinite(p)
        sig = tested & (p < _ALPHA)
        ax.plot(x[sig], y[sig], "o", color=colours[key], markersize=6)
        ax.plot(
            x[tested & ~sig],
            y[tested & ~sig],
            "o",
            markerfacecolor="white",
            color=colours[key],
            markersize=6,
        )
        ax.plot(x[~tested], y[~tested], ".", color=colours[key], markersize=5)
        null = part.column("null_mean")
        if np.isfinite(null).any():
            ax.plot(
                x,
                null,
                ":",
                color="grey",
                linewidth=1.2,
                label=None if null_drawn else "permutation null (mean)",
            )
            null_drawn = True
    kind = rows[0].kind
    if analysis == "tuning-change":
        ax.axhline(0.0, color="black", linewidth=0.8)
        side = "< 0" if kind == "distance" else "> 0"
        ax.set_ylabel(f"Δ {measure} (tuned − base)\n{side}: more alike after tuning")
    else:
        ax.set_ylabel(f"{measure}\n({_direction(kind)})")
    ax.set_xlabel(LAYER_AXIS)
    ax.set_xticks(sorted({layer_number(r) for r in rows}))
    ax.set_title(
        caption_title(_TITLES.get(analysis, analysis) + f" — {measure}", rows), fontsize=11
    )
    extra: list[tuple[Any, str]] = []
    if any(r.ci_low is not None for r in rows):
        extra.append((Patch(color="grey", alpha=0.25), "confidence interval"))
    if any(r.p_value is not None for r in rows):
        test = "resampling" if analysis == "tuning-change" else "permutation"
        extra.append(
            (Line2D([], [], marker="o", color="grey", linestyle=""), f"{test} p < {_ALPHA}")
        )
        extra.append(
            (
                Line2D([], [], marker="o", color="grey", markerfacecolor="white", linestyle=""),
                f"{test} p ≥ {_ALPHA}",
            )
        )
    _legend(ax, extra)
    ax.grid(alpha=0.3)
    return fig


def _series_label(
    analysis: str, ckpt: str, view: str, ckpt_b: str | None, view_b: str | None
) -> str:
    if analysis == "cross-modal":
        return f"{ckpt}: {view} vs {view_b}"
    if analysis == "cross-checkpoint":
        return f"{view}: {ckpt} vs {ckpt_b}"
    if analysis == "tuning-change":
        return f"{view} vs {view_b}: {ckpt} − {ckpt_b}"
    return f"{ckpt}:{view} vs {ckpt_b}:{view_b}"


def plot_layer_map(
    table: ResultsTable,
    *,
    measure: str,
    checkpoint: str,
    view: str,
    checkpoint_b: str,
    view_b: str,
    ax: Axes | None = None,
) -> Figure:
    """Heatmap of a layer x layer map, with each row's best-matching column marked.

    Rows are layers of the first view, columns layers of the second. A star marks the best match
    whose max-over-layers permutation ``p < 0.05``; a cross marks one that is not significant (or
    was not tested). The percentage under a marker, when the table has it, is the best match's
    stability over half-samples.
    """
    found = map_of(
        table, measure=measure, checkpoint=checkpoint, view=view, checkpoint_b=checkpoint_b,
        view_b=view_b,
    )  # fmt: skip
    layers_a, layers_b, values = list(found.layers_a), list(found.layers_b), found.values
    fig, ax = _new_axes(ax, size=(7.0, 5.8))
    cmap = "viridis" if found.kind != "distance" else "viridis_r"
    image = ax.imshow(values, origin="lower", cmap=cmap, aspect="auto")
    cbar = fig.colorbar(image, ax=ax)
    cbar.set_label(f"{measure} ({_direction(found.kind)})")
    ax.set_xticks(range(len(layers_b)), [str(x) for x in layers_b])
    ax.set_yticks(range(len(layers_a)), [str(x) for x in layers_a])
    ax.set_xlabel(f"{checkpoint_b}: {view_b} layer (0 = embedding output)")
    ax.set_ylabel(f"{checkpoint}: {view} layer (0 = embedding output)")
    stability = any(m.stability is not None for m in found.best)
    for m in found.best:
        if m.estimate.defined and m.layer in layers_a and m.layer_b in layers_b:
            significant = m.estimate.p_value is not None and m.estimate.p_value < _ALPHA
            x, y = layers_b.index(m.layer_b), layers_a.index(m.layer)
            ax.plot(
                x,
                y,
                marker="*" if significant else "x",
                color="white",
                markersize=13,
                markeredgecolor="black",
                markeredgewidth=0.6,
            )
            if m.stability is not None:
                ax.annotate(
                    f"{m.stability:.0%}",
                    (x, y),
                    xytext=(0, -13),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                    color="white",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "black", "alpha": 0.4, "lw": 0},
                )
    ax.set_title(
        f"{measure} for every layer pair: {checkpoint}:{view} vs {checkpoint_b}:{view_b}\n"
        f"★ best column of each row, p < {_ALPHA} (max-over-layers permutation null)\n"
        "× best column, not significant or not tested"
        + ("; % = share of half-samples with the\nsame best column" if stability else "")
        + (f"\n{found.n_samples} samples" if found.n_samples is not None else ""),
        fontsize=9,
    )
    return fig


def plot_id_profiles(
    table: ResultsTable, *, measure: str, view: str, ax: Axes | None = None
) -> Figure:
    """Intrinsic dimension over layers per checkpoint, with each detected abstraction phase shaded.

    The strip along the top edge runs from the phase onset to its end (half-prominence
    crossings) and the dashed vertical line marks the peak layer; see
    :func:`geomalign.analysis.detect_abstraction_phase`.
    """
    rows = table.select(analysis="id-profile", measure=measure, view=view)
    if not len(rows):
        raise ValueError(f"no id-profile rows for measure {measure!r} and view {view!r}.")
    fig, ax = _new_axes(ax)
    checkpoints = rows.unique("checkpoint")
    colours = _colours(checkpoints)
    phases = {
        p.profile.checkpoint: p
        for p in IDProfile.from_table(table)
        if (p.profile.measure, p.profile.view) == (measure, view)
    }
    for i, ckpt in enumerate(checkpoints):
        part = ResultsTable(sorted(rows.select(checkpoint=ckpt), key=layer_number))
        x, y = part.column("layer"), part.column("value")
        _band(ax, x, part, colours[ckpt])
        ax.plot(x, y, "o-", color=colours[ckpt], label=f"{ckpt}", linewidth=1.8)
        found = phases.get(str(ckpt))
        if found is not None and found.phase is not None:
            noisy = found.may_be_noise
            phase = {"onset": found.phase.onset, "end": found.phase.end}
            phase["peak_layer"] = found.phase.peak_layer
            # the phase as a strip along the top edge, one row per checkpoint
            top = 1.0 - 0.035 * i
            ax.axvspan(
                phase["onset"],
                phase["end"],
                ymin=top - 0.03,
                ymax=top,
                facecolor="none" if noisy else colours[ckpt],
                edgecolor=colours[ckpt],
                hatch="////" if noisy else None,
                alpha=0.6,
                label=f"{ckpt}: abstraction phase, layers {phase['onset']:.1f}–"
                f"{phase['end']:.1f}\n(from onset to end at half prominence"
                + ("; CI overlaps\nits base's: may be noise)" if noisy else ")"),
            )
            ax.axvline(phase["peak_layer"], color=colours[ckpt], linestyle="--", linewidth=1)
    ax.set_xlabel(LAYER_AXIS)
    ax.set_ylabel(f"intrinsic dimension ({measure})")
    ax.margins(y=0.12)  # room for the phase strips
    ax.set_xticks(sorted({layer_number(r) for r in rows}))
    ax.set_title(caption_title(f"Intrinsic dimension over layers — {view}", rows), fontsize=11)
    extra: list[tuple[Any, str]] = []
    if any(r.ci_low is not None for r in rows):
        extra.append((Patch(color="grey", alpha=0.25), "confidence interval"))
    extra.append((Line2D([], [], color="grey", linestyle="--"), "ID peak layer"))
    _legend(ax, extra)
    ax.grid(alpha=0.3)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path``; the suffix (``.png``, ``.pdf``, ``.svg``) picks the format."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path}: unsupported figure format {fmt!r}; expected one of {FORMATS}.")
    fig.savefig(path, format=fmt, dpi=150)
    return path


def _slug(*parts: object) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", str(p)).strip("-") for p in parts)


def plot_results(
    table: ResultsTable, out_dir: str | os.PathLike[str], *, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Draw every figure the table supports into ``out_dir``.

    One curve figure per (curve analysis, measure), one heatmap per layer map, one ID figure per
    (measure, view). Returns the written paths.
    """
    formats = [f.lower().lstrip(".") for f in formats]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}; got {list(formats)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Figure]] = []
    for analysis in ("cross-modal", "cross-checkpoint", "tuning-change"):
        for measure in map(str, table.select(analysis=analysis).unique("measure")):
            figures.append(
                (_slug(analysis, measure), plot_curves(table, analysis=analysis, measure=measure))
            )
    maps = table.select(analysis="layer-map")
    for key in dict.fromkeys(
        (r.measure, r.checkpoint, r.view, r.checkpoint_b, r.view_b) for r in maps
    ):
        measure, ckpt, view, ckpt_b, view_b = (str(part) for part in key)
        fig = plot_layer_map(
            table, measure=measure, checkpoint=ckpt, view=view, checkpoint_b=ckpt_b, view_b=view_b
        )
        figures.append((_slug("layer-map", measure, ckpt, view, ckpt_b, view_b), fig))
    profiles = table.select(analysis="id-profile")
    for measure, view in dict.fromkeys((r.measure, r.view) for r in profiles):
        figures.append(
            (
                _slug("id-profile", measure, view),
                plot_id_profiles(table, measure=measure, view=view),
            )
        )
    paths: list[Path] = []
    for stem, fig in figures:
        paths.extend(save_figure(fig, out / f"{stem}.{fmt}") for fmt in formats)
    return paths
