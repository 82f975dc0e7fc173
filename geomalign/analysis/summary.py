"""A plain-text reading of a results table: where alignment and ID peak, what tuning changed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from geomalign.analysis.evaluation import UNDEFINED_NOTE, undefined_note
from geomalign.analysis.id_profile import NOISE_NOTE
from geomalign.analysis.table import Result, ResultsTable

__all__ = ["summarize"]


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _calibration(row: Result) -> str:
    parts = []
    if row.ci_low is not None and row.ci_high is not None:
        parts.append(f"CI [{_num(row.ci_low)}, {_num(row.ci_high)}]")
    if row.p_value is not None:
        parts.append(f"p={row.p_value:.2g}")
    if row.null_mean is not None:
        parts.append(f"null {_num(row.null_mean)}")
    return f" ({', '.join(parts)})" if parts else ""


def _best(rows: list[Result], kind: str | None) -> Result:
    """The most-alike row: highest similarity, lowest distance."""
    if kind == "distance":
        return min(rows, key=lambda r: r.value)
    return max(rows, key=lambda r: r.value)


def _worst(rows: list[Result], kind: str | None) -> Result:
    return _best(rows, "similarity" if kind == "distance" else "distance")


def _defined(row: Result) -> bool:
    return not math.isnan(row.value)


def _groups(
    rows: Iterable[Result], *columns: str, keep: Callable[[Result], bool] = _defined
) -> dict[tuple, list[Result]]:
    """The rows ``keep`` accepts (by default those with a value) grouped by ``columns``."""
    out: dict[tuple, list[Result]] = {}
    for r in rows:
        if keep(r):
            out.setdefault(tuple(getattr(r, c) for c in columns), []).append(r)
    return out


def _cross_modal(table: ResultsTable) -> list[str]:
    lines = []
    for (measure, kind), rows in _groups(
        table.select(analysis="cross-modal"), "measure", "kind"
    ).items():
        word = "lowest distance" if kind == "distance" else "peaks"
        parts = []
        for (ckpt, view, view_b), curve in _groups(
            ResultsTable(rows), "checkpoint", "view", "view_b"
        ).items():
            b = _best(curve, kind)
            parts.append(
                f"{ckpt} ({view} vs {view_b}) {word} at layer {b.layer}: "
                f"{_num(b.value)}{_calibration(b)}"
            )
        lines.append(f"  {measure} [{kind}]: " + "; ".join(parts))
    return lines


def _tuning_change(table: ResultsTable, alpha: float) -> list[str]:
    lines = []
    for (measure, kind, ckpt, base), rows in _groups(
        table.select(analysis="tuning-change"), "measure", "kind", "checkpoint", "checkpoint_b"
    ).items():
        big = max(rows, key=lambda r: abs(r.value))
        sig = [r.layer for r in rows if r.p_value is not None and r.p_value < alpha]
        better = "more" if (big.value > 0) == (kind != "distance") else "less"
        text = (
            f"  {measure} [{kind}]: {ckpt} − {base} largest at layer {big.layer}: "
            f"{big.value:+.3g}{_calibration(big)}, i.e. image and caption {better} alike "
            "after tuning there"
        )
        if any(r.p_value is not None for r in rows):
            text += (
                f"; p < {alpha} at layers {', '.join(map(str, sig))}"
                if sig
                else f"; no layer with p < {alpha}"
            )
        lines.append(text)
    return lines


def _cross_checkpoint(table: ResultsTable) -> list[str]:
    lines = []
    for (measure, kind, view, ckpt, ckpt_b), rows in _groups(
        table.select(analysis="cross-checkpoint"),
        "measure",
        "kind",
        "view",
        "checkpoint",
        "checkpoint_b",
    ).items():
        least, most = _worst(rows, kind), _best(rows, kind)
        lines.append(
            f"  {view}, {measure} [{kind}]: {ckpt} vs {ckpt_b} least alike at layer "
            f"{least.layer} ({_num(least.value)}), most alike at layer {most.layer} "
            f"({_num(most.value)})"
        )
    return lines


def _best_match(table: ResultsTable, alpha: float) -> list[str]:
    lines = []
    matches = table.select(analysis="best-match")
    stability = {
        (r.measure, r.checkpoint, r.view, r.view_b, r.layer): r.value
        for r in matches.select(statistic="stability")
    }
    for (measure, ckpt, view, view_b), rows in _groups(
        matches.select(statistic="value"), "measure", "checkpoint", "view", "view_b"
    ).items():
        pairs = []
        for r in sorted(rows, key=lambda r: r.layer):
            mark = "" if r.p_value is None else ("*" if r.p_value < alpha else " (n.s.)")
            share = stability.get((measure, ckpt, view, view_b, r.layer))
            pairs.append(
                f"{r.layer}->{r.layer_b}{mark}" + ("" if share is None else f" ({share:.0%})")
            )
        lines.append(
            f"  {ckpt}, {measure}: {view} layer -> best {view_b} layer: " + ", ".join(pairs)
        )
    if lines and any(r.p_value is not None for r in matches):
        lines.append(f"  (* = better than chance: max-over-layers permutation p < {alpha})")
    if stability:
        lines.append("  (% = share of half-samples in which the same layer is best)")
    return lines


def _id(table: ResultsTable) -> list[str]:
    lines = []
    phases = table.select(analysis="abstraction-phase")
    for (measure, view), rows in _groups(
        table.select(analysis="id-profile"), "measure", "view"
    ).items():
        parts, peaks = [], {}
        for ckpt in ResultsTable(rows).unique("checkpoint"):
            stats = {
                r.statistic: r.value
                for r in phases.select(measure=measure, view=view, checkpoint=ckpt)
            }
            if not stats or not math.isfinite(stats.get("peak_layer", math.nan)):
                top = max((r for r in rows if r.checkpoint == ckpt), key=lambda r: r.value)
                parts.append(
                    f"{ckpt}: no interior peak (max {_num(top.value)} at layer {top.layer})"
                )
                continue
            noisy = any(
                NOISE_NOTE in r.notes
                for r in phases.select(measure=measure, view=view, checkpoint=ckpt)
            )
            if not noisy:
                peaks[ckpt] = int(stats["peak_layer"])
            parts.append(
                f"{ckpt}: peak at layer {int(stats['peak_layer'])} (ID {_num(stats['peak_value'])},"
                f" prominence {_num(stats['prominence'])}"
                + (", smaller than the CI: may be noise" if noisy else "")
                + f"), phase layers {stats['onset']:.1f}–{stats['end']:.1f}"
            )
        lines.append(f"  {view}, {measure}: " + "; ".join(parts))
        if len(peaks) > 1:
            (first, layer), *rest = peaks.items()
            moves = ", ".join(
                f"{ckpt} {'at the same layer' if other == layer else f'at layer {other}'}"
                for ckpt, other in rest
            )
            lines.append(f"    clear peaks: {first} at layer {layer}, {moves}")
    return lines


def _undefined(table: ResultsTable) -> list[str]:
    lines = []
    columns = ("analysis", "measure", "checkpoint", "view", "checkpoint_b", "view_b")
    # layer maps are left out: their best-match rows name the undefined layers
    undefined = (r for r in table if r.analysis != "layer-map" and undefined_note(r))
    for (analysis, measure, ckpt, view, ckpt_b, view_b), rows in _groups(
        undefined, *columns, keep=lambda r: True
    ).items():
        second = f" vs {ckpt_b} {view_b}" if view_b is not None else ""
        reason = undefined_note(rows[0])[len(UNDEFINED_NOTE) + 2 :]
        layers = ", ".join(str(r.layer) for r in sorted(rows, key=lambda r: r.layer))
        lines.append(f"  {analysis} {measure} {ckpt} {view}{second}: layers {layers} ({reason})")
    return lines


def summarize(table: ResultsTable, *, alpha: float = 0.05) -> str:
    """A few lines per analysis present in ``table``, for a reader in a hurry.

    Parameters
    ----------
    table : ResultsTable
        Rows from :func:`geomalign.analysis.analyze_store` or the single analyses.
    alpha : float, default=0.05
        Significance level quoted for p-values.

    Returns
    -------
    str
        Plain text, one section per analysis found.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}.")
    if not len(table):
        raise ValueError("summarize: the results table is empty.")
    checkpoints = [c for c in table.unique("checkpoint")]
    layers = sorted({r.layer for r in table if r.layer is not None})
    n = max((r.n_samples for r in table if r.n_samples is not None), default=None)
    notes = sorted({r.notes for r in table if "subsampled" in r.notes})
    head = [
        f"checkpoints: {', '.join(map(str, checkpoints))}; layers {layers[0]}..{layers[-1]} "
        f"(0 = embedding output); up to {n} samples per point"
        if layers
        else f"checkpoints: {', '.join(map(str, checkpoints))}"
    ]
    if notes:
        head.append("some measures ran on a subsample (see the notes column)")
    sections = [
        ("Cross-modal alignment (image vs caption, same samples):", _cross_modal(table)),
        ("What tuning changed in cross-modal alignment:", _tuning_change(table, alpha)),
        ("Base vs tuned, same modality:", _cross_checkpoint(table)),
        ("Best-matching layer across views:", _best_match(table, alpha)),
        ("Intrinsic dimension and abstraction phase:", _id(table)),
        ("Undefined values (NaN), left out above:", _undefined(table)),
    ]
    out = list(head)
    for title, lines in sections:
        if lines:
            out.extend(["", title, *lines])
    return "\n".join(out) + "\n"
