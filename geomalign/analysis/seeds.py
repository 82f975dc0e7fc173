"""Several checkpoints per role (models trained from different seeds): spread and agreement.

A *role* is a name (``"base"``, ``"tuned"``) standing for several checkpoints of a store that
were trained alike from different seeds. Comparisons between roles pair their checkpoints by
position (the tuned model of seed ``s`` with the base model it was tuned from). Each curve is
computed per checkpoint (or per pair) as usual; :func:`seed_spread` then adds one row per role
and layer whose value is the mean over the seeds and whose ``seed_low``, ``seed_high`` and
``n_seeds`` give the between-seed spread beside the resampling interval; :func:`seed_conclusions`
says which readings of a table hold in every seed.

The agreement rule, the same for every conclusion: a conclusion holds across seeds when every
seed gives it (the same peak layer; the same layer and sign of the largest tuning change; a
clear ID phase at the same layer, or none in any seed; a layer significant after the correction
across layers, with the same sign, in every seed). Otherwise it is printed as *seed-dependent*
with each seed's value.

A significant change must also be clear of the spread between seeds: the ``1 - alpha`` Student-t
interval of the seeds' mean change at that layer (:func:`geomalign.stats.mean_interval`, the
seeds taken as independent training runs) must exclude 0. Each seed's test asks whether *that*
trained model changed; a conclusion that is to hold on another machine, or for another seed,
is a claim about models trained so, and three models that all changed, in directions that
scatter around zero, do not support it. (If the seeds' changes scatter around zero with a
spread far above their resampling error, all three are significant with one sign in a quarter
of the layers; the interval keeps that to ``alpha`` per layer.) The interval is per layer, not
corrected across layers: with three seeds no correction across seven layers can pass (Holm
needs ``t > 11.6`` on 2 degrees of freedom), and the family-wise error of the whole rule is
bounded by each seed's correction when no model changed at all. Layers significant in every
seed but not clear of the spread are named as such among the seed-dependent ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from geomalign import stats
from geomalign.analysis import families
from geomalign.analysis.results import IDProfile
from geomalign.analysis.table import Result, ResultsTable

__all__ = [
    "Conclusion",
    "check_roles",
    "roles_of",
    "seed_conclusions",
    "seed_dependence",
    "seed_spread",
]

#: Analyses whose rows are aggregated over seeds (one value per layer).
SPREAD_ANALYSES = ("cross-modal", "cross-checkpoint", "tuning-change", "id-profile")


def check_roles(
    roles: Mapping[str, Sequence[str]], checkpoints: Sequence[str], *, where: str = "roles"
) -> dict[str, tuple[str, ...]]:
    """Validate ``roles`` (role -> checkpoints) against a store's ``checkpoints``.

    Every role needs at least one checkpoint of the store, a checkpoint belongs to one role
    only, all roles have the same number of checkpoints (they are paired by position), and
    a role of several checkpoints is not itself the name of a checkpoint.
    """
    if not isinstance(roles, Mapping) or not roles:
        raise ValueError(f"{where}: give a mapping role -> checkpoints; got {roles!r}.")
    out: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for role, members in roles.items():
        if isinstance(members, str):
            raise TypeError(f"{where}[{role!r}]: give a sequence of checkpoints; got {members!r}.")
        members = tuple(members)
        if not members:
            raise ValueError(f"{where}[{role!r}]: no checkpoint.")
        for ckpt in members:
            if ckpt not in checkpoints:
                raise ValueError(
                    f"{where}[{role!r}]: no checkpoint {ckpt!r}; the store has {list(checkpoints)}."
                )
            if re.search(r"[\s,;]", ckpt):
                raise ValueError(
                    f"{where}[{role!r}]: checkpoint {ckpt!r} has a space, comma or semicolon, "
                    "which the seed notes cannot hold."
                )
            if ckpt in seen:
                raise ValueError(
                    f"{where}: checkpoint {ckpt!r} is in roles {seen[ckpt]!r} and {role!r}."
                )
            seen[ckpt] = role
        if len(members) > 1 and role in checkpoints:
            raise ValueError(
                f"{where}: role {role!r} is also a checkpoint's name; name the role otherwise."
            )
        out[role] = members
    sizes = {role: len(m) for role, m in out.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"{where}: roles are paired seed by seed and need as many checkpoints each; "
            f"got {sizes}."
        )
    return out


def _role_of(roles: Mapping[str, Sequence[str]]) -> dict[str, str]:
    return {ckpt: role for role, members in roles.items() for ckpt in members}


def seed_spread(table: ResultsTable, roles: Mapping[str, Sequence[str]]) -> ResultsTable:
    """One row per role (pair of roles) and layer of every per-seed curve in ``table``.

    For each curve analysis (:data:`SPREAD_ANALYSES`) and layer, the rows of the seeds of a role
    (for comparisons: of the seed pairs of two roles) give one row with ``checkpoint`` (and
    ``checkpoint_b``) set to the role names and:

    - ``value``: the mean over the seeds with a defined value;
    - ``ci_low``, ``ci_high``: the seeds' resampling interval, on average, around that mean
      (``mean + mean(ci_low_s - value_s)``), i.e. how wide the resampling interval of one
      trained model is, to read beside the spread;
    - ``seed_low``, ``seed_high``, ``n_seeds``: the smallest and largest seed value and the
      number of seeds;
    - ``seed_checkpoints`` (and ``seed_checkpoints_b`` for the second role): the checkpoints,
      comma-separated, which is how :func:`roles_of` finds the roles again in a table loaded
      from CSV; the notes say so too (``seeds=<checkpoints>``, ``seeds_b=``).

    Roles of one checkpoint are left as they are. p-values are not averaged: which layers are
    significant in which seed is read from the per-seed rows (:func:`seed_conclusions`).

    Parameters
    ----------
    table : ResultsTable
        Per-checkpoint rows (e.g. from :func:`~geomalign.analysis.analyze_store`).
    roles : mapping of str to sequence of str
        Role -> its checkpoints, as passed to ``analyze_store``.

    Returns
    -------
    ResultsTable
        The role rows only.
    """
    role_of = _role_of(roles)
    groups: dict[tuple, list[Result]] = {}
    for r in table:
        if r.analysis not in SPREAD_ANALYSES or r.checkpoint not in role_of:
            continue
        if r.checkpoint_b is not None and r.checkpoint_b not in role_of:
            continue
        role = role_of[r.checkpoint]
        role_b = None if r.checkpoint_b is None else role_of[r.checkpoint_b]
        if len(roles[role]) < 2:
            continue
        key = (r.analysis, r.measure, r.kind, r.statistic, r.view, r.view_b, r.layer, r.layer_b)
        groups.setdefault((role, role_b, *key), []).append(r)
    out = ResultsTable()
    for (role, role_b, *_), rows in groups.items():
        out.append(_spread_row(rows, role, role_b))
    return out


def _spread_row(rows: list[Result], role: str, role_b: str | None) -> Result:
    first = rows[0]
    defined = [r for r in rows if not math.isnan(r.value)]
    values = np.array([r.value for r in defined], dtype=np.float64)
    mean = float(values.mean()) if len(values) else math.nan
    low = high = None
    if defined and all(r.ci_low is not None and r.ci_high is not None for r in defined):
        low = mean + float(np.mean([r.ci_low - r.value for r in defined]))  # type: ignore[operator]
        high = mean + float(np.mean([r.ci_high - r.value for r in defined]))  # type: ignore[operator]
    members = ",".join(r.checkpoint for r in rows)
    members_b = None if role_b is None else ",".join(str(r.checkpoint_b) for r in rows)
    notes = [f"seeds={members}"]
    if members_b is not None:
        notes.append(f"seeds_b={members_b}")
    notes.append(
        "value = mean over seeds; CI = the seeds' mean resampling interval around it; "
        "seed_low/seed_high = smallest/largest seed value"
    )
    if len(defined) < len(rows):
        notes.append(f"undefined in {len(rows) - len(defined)} of {len(rows)} seeds")
    sizes = [r.n_samples for r in rows if r.n_samples is not None]
    return Result(
        analysis=first.analysis,
        measure=first.measure,
        checkpoint=role,
        view=first.view,
        layer=first.layer,
        value=mean,
        statistic=first.statistic,
        checkpoint_b=role_b,
        view_b=first.view_b,
        layer_b=first.layer_b,
        kind=first.kind,
        ci_low=low,
        ci_high=high,
        n_samples=min(sizes) if sizes else None,
        notes="; ".join(notes),
        seed_low=float(values.min()) if len(values) else None,
        seed_high=float(values.max()) if len(values) else None,
        n_seeds=len(defined),
        confidence=None if low is None else defined[0].confidence,
        n_resamples=None if low is None else defined[0].n_resamples,
        seed_checkpoints=members,
        seed_checkpoints_b=members_b,
    )


def roles_of(table: ResultsTable) -> dict[str, tuple[str, ...]]:
    """The roles of a table with seed rows: role -> its checkpoints, in the order of the rows."""
    roles: dict[str, tuple[str, ...]] = {}
    for r in table:
        for role, members in ((r.checkpoint, r.seed_checkpoints),
                              (r.checkpoint_b, r.seed_checkpoints_b)):  # fmt: skip
            if role is not None and members is not None:
                roles.setdefault(role, tuple(members.split(",")))
    return roles


def seed_dependence(what: str, values: Mapping[str, float], *, fmt: str = "{:+.3g}") -> str:
    """One line: ``what`` holds in every seed (the sign of every value agrees), or not.

    ``values`` maps a seed's name to its signed value (e.g. tuned minus base accuracy).
    """
    numbers = list(values.values())
    signs = {np.sign(v) for v in numbers}
    shown = ", ".join(f"{name} {fmt.format(v)}" for name, v in values.items())
    if all(map(math.isfinite, numbers)) and len(signs) == 1 and 0 not in signs and len(values) > 1:
        return (
            f"{what}: same sign in all {len(values)} seeds "
            f"({fmt.format(min(numbers))} to {fmt.format(max(numbers))})"
        )
    return f"{what}: seed-dependent ({shown})"


def _per_seed(
    table: ResultsTable, analysis: str, roles: Mapping[str, Sequence[str]]
) -> dict[tuple, dict[str, list[Result]]]:
    """Per-seed curves: (role, role_b, measure, kind, view, view_b) -> seed -> its rows."""
    role_of = _role_of(roles)
    out: dict[tuple, dict[str, list[Result]]] = {}
    for r in table.select(analysis=analysis, statistic="value"):
        if r.n_seeds is not None or r.checkpoint not in role_of or math.isnan(r.value):
            continue
        role_b = role_of.get(r.checkpoint_b) if r.checkpoint_b is not None else None
        key = (role_of[r.checkpoint], role_b, r.measure, r.kind, r.view, r.view_b)
        out.setdefault(key, {}).setdefault(r.checkpoint, []).append(r)
    return {k: v for k, v in out.items() if len(v) > 1}


def _best(rows: Iterable[Result], kind: str | None) -> Result:
    if kind == "distance":
        return min(rows, key=lambda r: r.value)
    return max(rows, key=lambda r: r.value)


@dataclass(frozen=True)
class Conclusion:
    """One conclusion of a table with seed rows: what it is about, whether every seed gives it.

    Attributes
    ----------
    subject : str
        What the conclusion is about, e.g. ``"tuned − base, cka-linear [similarity]"``.
    claim : str
        What was found, without numbers that vary between equally valid models, e.g.
        ``"peak at layer 6 in all 3 seeds"`` or ``"peak layer seed-dependent"``: two runs
        agree on a conclusion when their claims are equal.
    holds : bool
        Whether every seed gives it.
    values : str
        The seeds' values behind the claim.
    reading : str
        A finer reading printed under the conclusion (the standing of each significant layer),
        or empty.
    """

    subject: str
    claim: str
    holds: bool
    values: str = ""
    reading: str = ""

    def lines(self) -> list[str]:
        """The conclusion as printed in a summary: one line, and the reading indented below."""
        head = f"  {self.subject}: {self.claim}" + (f" ({self.values})" if self.values else "")
        return [head, f"    {self.reading}"] if self.reading else [head]


def _peaks(table: ResultsTable, roles: Mapping[str, Sequence[str]]) -> list[Conclusion]:
    out = []
    for (role, _, measure, kind, view, view_b), seeds in _per_seed(
        table, "cross-modal", roles
    ).items():
        word = "lowest distance" if kind == "distance" else "peak"
        best = {ckpt: _best(rows, kind) for ckpt, rows in seeds.items()}
        layers = {b.layer for b in best.values()}
        subject = f"{role}, {measure} ({view} vs {view_b})"
        if len(layers) == 1:
            values = [b.value for b in best.values()]
            claim = f"{word} at layer {layers.pop()} in all {len(best)} seeds"
            out.append(Conclusion(subject, claim, True, f"{min(values):.3g} to {max(values):.3g}"))
        else:
            shown = ", ".join(f"{c} layer {b.layer}: {b.value:.3g}" for c, b in best.items())
            out.append(Conclusion(subject, f"{word} layer seed-dependent", False, shown))
    return out


def _phases(table: ResultsTable, roles: Mapping[str, Sequence[str]]) -> list[Conclusion]:
    """Per role, view and ID measure: a clear abstraction phase at one layer in every seed."""
    role_of = _role_of(roles)
    clear: dict[tuple[str, str, str | None], dict[str, int | None]] = {}
    for found in IDProfile.from_table(table):
        ckpt = found.profile.checkpoint
        if ckpt not in role_of or len(roles[role_of[ckpt]]) < 2:
            continue
        key = (role_of[ckpt], found.profile.measure, found.profile.view)
        peak = None if found.phase is None or found.may_be_noise else found.phase.peak_layer
        clear.setdefault(key, {})[ckpt] = peak
    out = []
    for (role, measure, view), peaks in clear.items():
        subject, layers = f"{role}, {measure} ({view})", set(peaks.values())
        if len(layers) == 1 and None not in layers:
            claim = f"clear ID phase peaking at layer {layers.pop()} in all {len(peaks)} seeds"
            out.append(Conclusion(subject, claim, True))
        else:
            shown = ", ".join(
                f"{c} {'none' if layer is None else f'at layer {layer}'}"
                for c, layer in peaks.items()
            )
            out.append(
                Conclusion(subject, "no clear ID phase at one layer in every seed", False, shown)
            )
    return out


def _changes(
    table: ResultsTable, roles: Mapping[str, Sequence[str]], alpha: float, correction: str
) -> list[Conclusion]:
    out = []
    for (role, role_b, measure, kind, _, _), seeds in _per_seed(
        table, "tuning-change", roles
    ).items():
        subject = f"{role} − {role_b}, {measure} [{kind}]"
        big = {ckpt: max(rows, key=lambda r: abs(r.value)) for ckpt, rows in seeds.items()}
        where = {(b.layer, np.sign(b.value)) for b in big.values()}
        if len(where) == 1:
            values = [b.value for b in big.values()]
            claim = f"largest change at layer {next(iter(where))[0]} in all {len(big)} seeds"
            out.append(
                Conclusion(subject, claim, True, f"{min(values):+.3g} to {max(values):+.3g}")
            )
        else:
            shown = ", ".join(f"{c} layer {b.layer}: {b.value:+.3g}" for c, b in big.items())
            out.append(Conclusion(subject, "largest change seed-dependent", False, shown))
        out.append(_significant(subject, seeds, alpha, correction))
    return out


def _significant(
    subject: str, seeds: Mapping[str, list[Result]], alpha: float, correction: str
) -> Conclusion:
    """Whether every seed's change is significant somewhere, with each layer's standing."""
    found: dict[str, dict[int, float]] = {}  # seed -> significant layer -> signed value
    for ckpt, rows in seeds.items():
        tested = sorted((r for r in rows if r.p_value is not None), key=lambda r: r.layer or 0)
        adjusted: list[float] = list(families.adjusted(tested, correction)[0]) if tested else []
        found[ckpt] = {
            int(r.layer): r.value
            for r, p in zip(tested, adjusted, strict=True)
            if p <= alpha and r.layer is not None
        }
    test = f"p <= {alpha}, {_used(seeds, correction)} over layers"
    layers = sorted(set().union(*(set(f) for f in found.values())))
    reading = _layer_standing(seeds, found, layers, alpha) if layers else ""
    if all(found.values()):
        claim = f"significant change in all {len(found)} seeds"
        return Conclusion(subject, claim, True, test, reading)
    where = "; ".join(
        f"{c} at layers {', '.join(map(str, sorted(f)))}" for c, f in found.items() if f
    )
    return Conclusion(
        subject, "significant change not in every seed", False, f"{where or 'in none'}; {test}",
        reading,
    )  # fmt: skip


def _layer_standing(
    seeds: Mapping[str, list[Result]],
    found: Mapping[str, Mapping[int, float]],
    layers: Sequence[int],
    alpha: float,
) -> str:
    """Each significant layer: in every seed, one sign, clear of the spread between seeds?"""
    value = {(c, r.layer): r.value for c, rows in seeds.items() for r in rows}
    level = f"{1 - alpha:.0%}"
    clear, other = [], []
    for layer in layers:
        values = [value[c, layer] for c in seeds]
        low, high = stats.mean_interval(values, confidence=1 - alpha)
        every = all(layer in f for f in found.values()) and len(set(np.sign(values))) == 1
        if every and (low > 0 or high < 0):
            clear.append(f"layer {layer} ({np.mean(values):+.3g}, [{low:+.3g}, {high:+.3g}])")
            continue
        shown = ", ".join(
            f"{c} {value[c, layer]:+.3g}{'*' if layer in f else ''}" for c, f in found.items()
        )
        if every:
            shown += f"; {level} over seeds [{low:+.3g}, {high:+.3g}] holds 0"
        other.append(f"layer {layer} ({shown})")
    text = (
        "layers significant in every seed, one sign, clear of the spread between seeds (mean "
        f"change, {level} t-interval over seeds): {'; '.join(clear) or 'none'}"
    )
    if other:
        text += "; seed-dependent (* = significant in that seed): " + "; ".join(other)
    return text


def _used(seeds: Mapping[str, list[Result]], correction: str) -> str:
    """The corrections ``correction`` resolved to in the seeds' curves, e.g. ``"max-t"``."""
    used = {families.resolve(rows, correction) for rows in seeds.values()}
    return "/".join(sorted(used, key=families.CORRECTIONS.index))


def seed_conclusions(
    table: ResultsTable, *, alpha: float = 0.05, correction: str = "auto"
) -> list[Conclusion]:
    """The conclusions of a table with seed rows, each marked as holding in every seed or not.

    Per role: the layer where each cross-modal curve peaks, and whether each ID profile has a
    clear abstraction phase (:attr:`~geomalign.analysis.IDProfile.may_be_noise`) at one layer
    in every seed; per pair of roles: the layer and sign of the largest tuning change, and
    whether every seed's change is significant after ``correction`` across layers
    (:data:`~geomalign.analysis.families.CORRECTIONS`; ``"auto"``: max-T where the rows carry
    it, else Holm), with the standing of each significant layer as a reading (in every seed
    with one sign and clear of the spread between seeds, or seed-dependent). The rule is the
    module's: a conclusion holds when every seed gives it; otherwise it says so and gives each
    seed's value.

    Returns
    -------
    list of Conclusion
        Empty when the table has no roles of several seeds. ``Conclusion.lines()`` gives the
        summary's text; two tables reach the same conclusions when their ``(subject, claim)``
        pairs are equal.
    """
    roles = roles_of(table)
    if not roles:
        return []
    return [
        *_peaks(table, roles),
        *_phases(table, roles),
        *_changes(table, roles, alpha, correction),
    ]
