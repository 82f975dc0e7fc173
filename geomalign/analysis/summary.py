"""A plain-text reading of a results table: where alignment and ID peak, what tuning changed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from geomalign import stats
from geomalign.analysis import families
from geomalign.analysis.results import Estimate, IDProfile, LayerMap
from geomalign.analysis.seeds import roles_of, seed_conclusions
from geomalign.analysis.table import Result, ResultsTable, layer_number

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
    if row.n_seeds is not None:
        parts.append(f"seeds {_num(row.seed_low)} to {_num(row.seed_high)}, n={row.n_seeds}")
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
            family = sum(r.max_t_p_value is not None for r in curve)
            chosen = (
                f", max-T p={b.max_t_p_value:.4g} for the best of {family} layers"
                if b.max_t_p_value is not None
                else ""
            )
            parts.append(
                f"{ckpt} ({view} vs {view_b}) {word} at layer {b.layer}: "
                f"{_num(b.value)}{_calibration(b)}{chosen}"
            )
        lines.append(f"  {measure} [{kind}]: " + "; ".join(parts))
    return lines


_WORDS = {
    "max-t": "max-T-adjusted p",
    "holm": "Holm-adjusted p",
    "bh": "BH-adjusted p (FDR)",
    "none": "p (unadjusted)",
}


def _family(rows: list[Result], alpha: float, correction: str, alternative: str) -> str:
    """Which layers of one curve are significant after ``correction``, and the p-value floor.

    ``"; <Holm-adjusted p> < alpha at layers ..."`` (or ``"no layer with ..."``), then, when
    some p-value sits at its floor ``1 / (draws + 1)`` (two-sided ``2 / (draws + 1)``), a
    remark saying so, and when the draws cannot give a corrected p-value below ``alpha`` at all,
    how many would: the smallest max-T p-value is ``1 / (draws + 1)``, Holm's and BH's ``m``
    times a layer's floor over ``m`` layers.
    """
    tested = sorted((r for r in rows if r.p_value is not None), key=lambda r: r.layer or 0)
    if not tested:
        return ""
    adjusted, method = families.adjusted(tested, correction)
    word = _WORDS[method]
    sig = [str(r.layer) for r, p in zip(tested, adjusted, strict=True) if p <= alpha]
    over = f" over {len(tested)} layers" if method != "none" else ""
    text = (
        f"; {word} <= {alpha}{over} at layers {', '.join(sig)}"
        if sig
        else f"; no layer with {word} <= {alpha}{over}"
    )
    draws = tested[0].n_null_draws
    if draws is None:
        return text
    floor = stats.p_value_floor(draws, alternative=alternative)
    at_floor = [str(r.layer) for r in tested if r.p_value is not None and r.p_value <= floor]
    if at_floor:
        text += (
            f"; p at its floor {floor:.2g} (= {'2' if alternative == 'two-sided' else '1'}/"
            f"({draws}+1)) at layers {', '.join(at_floor)}: more draws may give smaller p"
        )
    if method == "max-t":  # the most extreme of all layers against its own null: one-sided
        m, floor, alternative = 1, stats.p_value_floor(draws), "greater"
    else:
        m = len(tested) if method != "none" else 1
    if m * floor > alpha:
        need = stats.draws_needed(m, alpha, alternative=alternative)
        text += (
            f"; with {draws} draws the smallest possible {word} is {min(1.0, m * floor):.2g} > "
            f"{alpha}: use at least {need} for a single layer to reach it"
        )
    return text


def _tuning_change(table: ResultsTable, alpha: float, correction: str) -> list[str]:
    lines = []
    for (measure, kind, ckpt, base), rows in _groups(
        table.select(analysis="tuning-change"), "measure", "kind", "checkpoint", "checkpoint_b"
    ).items():
        big = max(rows, key=lambda r: abs(r.value))
        better = "more" if (big.value > 0) == (kind != "distance") else "less"
        text = (
            f"  {measure} [{kind}]: {ckpt} − {base} largest at layer {big.layer}: "
            f"{big.value:+.3g}{_calibration(big)}, i.e. image and caption {better} alike "
            "after tuning there"
        )
        lines.append(text + _family(rows, alpha, correction, "two-sided"))
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


def _best_match(table: ResultsTable, alpha: float, correction: str) -> list[str]:
    lines, methods = [], set()
    maps = [m for m in LayerMap.from_table(table) if m.best]
    for m in maps:
        pairs = []
        best = [b for b in sorted(m.best, key=lambda b: b.layer) if b.estimate.defined]
        tested = [b.estimate for b in best if b.estimate.p_value is not None]
        if tested:
            found, method = families.adjusted(tested, correction)
            methods.add(method)
        adjusted = iter(found if tested else [])
        for match in best:
            p_value = match.estimate.p_value
            mark = "" if p_value is None else ("*" if next(adjusted) <= alpha else " (n.s.)")
            share = "" if match.stability is None else f" ({match.stability:.0%})"
            pairs.append(f"{match.layer}->{match.layer_b}{mark}{share}")
        if pairs:
            lines.append(
                f"  {m.checkpoint}, {m.measure}: {m.view} layer -> best {m.view_b} layer: "
                + ", ".join(pairs)
            )
    if lines and methods:
        used = " or ".join(_WORDS[m] for m in sorted(methods, key=families.CORRECTIONS.index))
        lines.append(
            f"  (* = better than chance: max-over-layers permutation {used} <= "
            f"{alpha} over the layers of each map)"
        )
    if any(b.stability is not None for m in maps for b in m.best):
        lines.append("  (% = share of half-samples in which the same layer is best)")
    return lines


def _id(table: ResultsTable) -> list[str]:
    lines = []
    profiles = IDProfile.from_table(table)
    for measure, view in dict.fromkeys((p.profile.measure, p.profile.view) for p in profiles):
        parts, peaks = [], {}
        for found in (
            p for p in profiles if (p.profile.measure, p.profile.view) == (measure, view)
        ):
            ckpt, phase = found.profile.checkpoint, found.phase
            if phase is None:
                defined = [
                    (e.value, layer)
                    for layer, e in zip(found.profile.layers, found.profile.estimates, strict=True)
                    if e.defined
                ]
                if not defined:
                    continue
                value, layer = max(defined, key=lambda pair: pair[0])
                parts.append(f"{ckpt}: no interior peak (max {_num(value)} at layer {layer})")
                continue
            noisy = found.may_be_noise
            if not noisy:
                peaks[ckpt] = phase.peak_layer
            p_value = found.profile.at(phase.peak_layer).p_value
            test = "" if p_value is None else f", phase test p={p_value:.2g}"
            why = "" if p_value is not None else ", CI overlaps its base's"
            parts.append(
                f"{ckpt}: peak at layer {phase.peak_layer} (ID {_num(phase.peak_value)},"
                f" prominence {_num(phase.prominence)}{test}"
                + (f"{why}: may be noise" if noisy else "")
                + f"), phase layers {phase.onset:.1f}–{phase.end:.1f}"
            )
        if not parts:
            continue
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
    undefined = (r for r in table if r.analysis != "layer-map" and Estimate.of(r).undefined_reason)
    for (analysis, measure, ckpt, view, ckpt_b, view_b), rows in _groups(
        undefined, *columns, keep=lambda r: True
    ).items():
        second = f" vs {ckpt_b} {view_b}" if view_b is not None else ""
        reason = Estimate.of(rows[0]).undefined_reason
        layers = ", ".join(str(r.layer) for r in sorted(rows, key=layer_number))
        lines.append(f"  {analysis} {measure} {ckpt} {view}{second}: layers {layers} ({reason})")
    return lines


#: Where the conclusions across seeds end and the readings of single models begin.
_PER_MODEL = (
    "Below: each trained model on its own, and the means over seeds. These are readings, not "
    "conclusions: another seed, or another machine's rounding, trains other models."
)


def _across_seeds(table: ResultsTable, alpha: float, correction: str) -> list[str]:
    """The conclusions across seeds, then the line that opens the per-model readings."""
    lines = [
        line
        for found in seed_conclusions(table, alpha=alpha, correction=correction)
        for line in found.lines()
    ]
    return [*lines, "", _PER_MODEL] if lines else []


def summarize(table: ResultsTable, *, alpha: float = 0.05, correction: str = "auto") -> str:
    """A few lines per analysis present in ``table``, for a reader in a hurry.

    Parameters
    ----------
    table : ResultsTable
        Rows from :func:`geomalign.analysis.analyze_store` or the single analyses.
    alpha : float, default=0.05
        Significance level quoted for p-values.
    correction : {"auto", "max-t", "holm", "bh", "none"}, default="auto"
        Correction across the layers of each curve (and each map's best matches) before a
        layer is called significant (:mod:`geomalign.analysis.families`): max-T from the joint
        draws behind the p-values (family-wise), Holm's family-wise control, Benjamini-Hochberg's
        false-discovery-rate control, or none. ``"auto"`` is max-T for a family whose rows carry
        max-T p-values (the analyses draw every layer alike), else Holm: a family-wise method
        either way, and max-T's smallest p-value is ``1 / (draws + 1)`` whatever the number of
        layers, where Holm needs ``m`` times more draws over ``m`` layers. A p-value at its
        floor ``1 / (draws + 1)`` is pointed out, and so are draws too few for any layer to
        reach ``alpha`` after the correction.

    A table with several checkpoints per role (``analyze_store(..., roles=...)``) opens with
    the conclusions that hold in every seed, and those that do not marked "seed-dependent"
    with each seed's value (:func:`~geomalign.analysis.seed_conclusions`); its role rows show
    the between-seed range beside the resampling interval.

    Returns
    -------
    str
        Plain text, one section per analysis found.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}.")
    families.check_correction(correction)
    if not len(table):
        raise ValueError("summarize: the results table is empty.")
    roles = roles_of(table)
    checkpoints = [c for c in table.unique("checkpoint") if c not in roles]
    layers = sorted({r.layer for r in table if r.layer is not None})
    n = max((r.n_samples for r in table if r.n_samples is not None), default=None)
    subsampled = any(r.n_subsample is not None for r in table)
    head = [
        f"checkpoints: {', '.join(map(str, checkpoints))}; layers {layers[0]}..{layers[-1]} "
        f"(0 = embedding output); up to {n} samples per point"
        if layers
        else f"checkpoints: {', '.join(map(str, checkpoints))}"
    ]
    if roles:
        head.append(
            "roles (mean over seeds; seeds paired by position): "
            + "; ".join(f"{role} = {', '.join(members)}" for role, members in roles.items())
        )
    if subsampled:
        head.append("some measures ran on a subsample (see the notes column)")
    sections = [
        (
            "Across seeds (a conclusion holds when every seed gives it, else seed-dependent):",
            _across_seeds(table, alpha, correction),
        ),
        ("Cross-modal alignment (image vs caption, same samples):", _cross_modal(table)),
        ("What tuning changed in cross-modal alignment:", _tuning_change(table, alpha, correction)),
        ("Base vs tuned, same modality:", _cross_checkpoint(table)),
        ("Best-matching layer across views:", _best_match(table, alpha, correction)),
        ("Intrinsic dimension and abstraction phase:", _id(table)),
        ("Undefined values (NaN), left out above:", _undefined(table)),
    ]
    out = list(head)
    for title, lines in sections:
        if lines:
            out.extend(["", title, *lines])
    return "\n".join(out) + "\n"
