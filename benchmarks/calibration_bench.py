"""Simulation-based calibration of every p-value and interval the analyses report.

Each setting repeats one analysis on data drawn from a population whose truth is known
(:mod:`geomalign.simulation`) and prints, with the Monte-Carlo (binomial) error of each rate:

- the false-positive rate at alpha = 0.05 where the null holds (target [0.035, 0.065]);
- the coverage of the 95% intervals of the population value (target [0.93, 0.97]);
- the family-wise error over the layers of a null curve, unadjusted and with Holm / BH;
- the family-wise error over the layers of a null tuning-change curve (Holm, max-T);
- how often a flat or monotone ID profile is called an abstraction phase (at most 0.05), and
  how often a planted peak is;
- power against effect size and n (written as ``power.png`` with ``--out``).

A rate outside its target is marked ``MISS``; the regime column says where the number holds.
Run ``python benchmarks/calibration_bench.py --out calibration/`` (>= 500 studies per setting,
about an hour on one core); ``--studies 100 --power-studies 50`` for a quick look.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch

from geomalign.simulation import (
    LEVELS,
    GaussianViews,
    LayeredViews,
    Rate,
    best_match_study,
    cross_modal_study,
    curve_family_study,
    effect_study,
    id_profile_study,
    probe_study,
    run_studies,
    tuning_change_family_study,
    tuning_change_study,
)

FPR_TARGET, COVERAGE_TARGET = (0.035, 0.065), (0.93, 0.97)
PHASE_TARGET = (0.0, 0.05)  # phase calls on profiles without a phase: at most alpha
WIDTH = {"n_latent": 3, "n_features_x": 8, "n_features_y": 8}


def _views(cka: float, seed: int = 0) -> GaussianViews:
    return GaussianViews.random(linear_cka=cka, random_state=seed, **WIDTH)


def _settings() -> list[tuple[str, str, object, dict[str, tuple[float, float] | None]]]:
    """(analysis, setting, study, {outcome: target or None (reported only)})."""
    out: list = []

    def add(analysis: str, setting: str, study: object, **targets: object) -> None:
        out.append((analysis, setting, study, targets))

    levels = {f"covered_{level:g}": None for level in LEVELS}
    fpr, cov = {"rejected": FPR_TARGET}, {"covered": COVERAGE_TARGET, **levels}
    both = {**fpr, "covered": COVERAGE_TARGET}
    null4 = LayeredViews.planted([0.0] * 4, random_state=1, **WIDTH)
    null8 = LayeredViews.planted([0.0] * 8, random_state=2, **WIDTH)
    planted = LayeredViews.planted([0, 0, 0.3, 0.5, 0.3, 0, 0, 0], random_state=3, **WIDTH)
    independent = _views(0.0)
    for n in (40, 160):
        study = cross_modal_study(independent, n, n_resamples=0)
        add("cross-modal cka-linear", f"independent views, n={n}", study, **fpr)
    study = cross_modal_study(independent, 80, measure="mutual-knn", n_resamples=0)
    add("cross-modal mutual-knn", "independent views, n=80", study, **fpr)
    for measure in ("cka-linear", "cka-linear-debiased"):
        for n in (40, 160):
            study = cross_modal_study(_views(0.5), n, measure=measure, n_permutations=0)
            add(f"cross-modal {measure}", f"population CKA 0.5, n={n}", study, **cov)
        study = cross_modal_study(independent, 80, measure=measure, n_permutations=0)
        add(f"cross-modal {measure}", "population CKA 0 (independent), n=80", study, **cov)
    for n in (40, 160):
        study = tuning_change_study(_views(0.5), _views(0.5, 5), n)
        add("tuning-change cka-linear", f"no change (CKA 0.5 both), n={n}", study,
            **fpr, covered=COVERAGE_TARGET)  # fmt: skip
    study = tuning_change_study(_views(0.3), _views(0.5, 5), 160)
    add("tuning-change cka-linear", "change 0.3 -> 0.5, n=160", study, covered=COVERAGE_TARGET)
    study = best_match_study(null4, 60)
    add("best-match (max over 4 layers)", "independent views, n=60", study,
        rejected=FPR_TARGET, any_rejected=None)  # fmt: skip
    study = curve_family_study(null8, 60)
    add("curve of 8 layers", "all layers null, n=60", study,
        any_unadjusted=None, any_holm=FPR_TARGET, any_bh=FPR_TARGET,
        any_max_t=FPR_TARGET)  # fmt: skip
    base8 = LayeredViews.planted([0.5] * 8, random_state=11, **WIDTH)
    tuned8 = LayeredViews.planted([0.5] * 8, random_state=12, **WIDTH)
    for n in (20, 40, 60, 160):  # Holm cannot pass here: 8 x 2 / (99 + 1) > 0.05
        study = tuning_change_family_study(base8, tuned8, n)
        add("tuning-change curve of 8 layers", f"no change (CKA 0.5 both), n={n}", study,
            any_unadjusted=None, any_holm=None, any_max_t=FPR_TARGET)  # fmt: skip
    study = curve_family_study(planted, 60)
    add("curve of 8 layers", "3 of 8 layers planted (0.3, 0.5, 0.3), n=60", study,
        any_holm=(0.0, 0.065), any_max_t=(0.0, 0.065), any_bh=None, missed_holm=None,
        missed_max_t=None)  # fmt: skip
    steps = [2 + (5 * i) // 33 for i in range(33)]  # 2, ..., 6 in steps of about 7 layers
    hump = [2 + min(i, 32 - i) * 6 // 16 for i in range(33)]  # 2 up to 8 at layer 16, down to 2
    no_phase = {"clear_phase": PHASE_TARGET}
    for dims, what, targets in (
        ([3] * 5, "flat: 5 layers of a 3-torus", no_phase),
        ([3] * 10, "flat: 10 layers of a 3-torus", no_phase),
        ([3] * 33, "flat: 33 layers of a 3-torus", no_phase),
        ([2, 3, 4, 5, 6], "monotone: tori of dimension 2..6", no_phase),
        (steps, "monotone: 33 layers, tori of dimension 2..6 in steps", no_phase),
        ([3, 3, 4, 3, 3], "small planted peak: dimensions 3, 3, 4, 3, 3", {"clear_phase": None}),
        ([2, 4, 8, 4, 2], "planted peak: dimensions 2, 4, 8, 4, 2", {"clear_phase": None}),
        (hump, "planted peak: 33 layers, dimensions 2 up to 8 and down", {"clear_phase": None}),
    ):
        study = id_profile_study(dims, 300)
        add("ID profile twonn", f"{what}, n=300", study, phase=None, **targets,
            covered=COVERAGE_TARGET)  # fmt: skip
    for groups, size in ((10, 4), (40, 4)):
        study = effect_study(groups, size)
        add("effect curve window", f"no effect, {groups} images x {size} items", study,
            **both, **levels)  # fmt: skip
    study = probe_study(60, 5, n_permutations=39)
    add("probe", "label independent of X, n=60, 5 features", study, **fpr)
    return out


def _mark(rate: Rate, target: tuple[float, float] | None) -> str:
    if target is None:
        return ""
    return "ok" if target[0] <= rate.value <= target[1] else "MISS"


POWER_SIZES, POWER_NS = (0.0, 0.05, 0.1, 0.2, 0.3), (20, 40, 80)


def _setting_rates(task: tuple[int, int]) -> tuple[int, dict[str, Rate], float]:
    """Rates of setting ``task[0]`` over ``task[1]`` studies, and the CPU seconds they took."""
    index, n_studies = task
    torch.set_num_threads(1)
    start = time.process_time()
    rates = run_studies(_settings()[index][2], n_studies, random_state=0)  # type: ignore[arg-type]
    return index, rates, time.process_time() - start


def _power_rate(task: tuple[int, float, int]) -> Rate:
    n, cka, n_studies = task
    torch.set_num_threads(1)
    study = cross_modal_study(_views(cka), n, n_resamples=0)
    return run_studies(study, n_studies, random_state=7)["rejected"]


def _power_figure(rows: list[tuple[int, float, Rate]], out: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for n in POWER_NS:
        rates = [r for m, _, r in rows if m == n]
        ax.errorbar(POWER_SIZES, [r.value for r in rates], yerr=[r.error for r in rates],
                    marker="o", capsize=2, label=f"n = {n}")  # fmt: skip
    ax.axhline(0.05, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("population linear CKA")
    ax.set_ylabel("power at alpha = 0.05")
    ax.set_title("cross-modal cka-linear permutation test (99 permutations)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "power.png", dpi=120)


def _table_rates(rows: list[list]) -> list[tuple[str, str, dict[str, Rate], dict]]:
    """``(analysis, setting, rates, targets)`` per setting of ``table.csv`` rows."""
    settings: dict[tuple[str, str], tuple[dict[str, Rate], dict]] = {}
    for analysis, setting, outcome, rate, _, n, target, *_ in rows:
        rates, targets = settings.setdefault((analysis, setting), ({}, {}))
        rates[outcome] = Rate(round(float(rate) * int(n)), int(n))
        targets[outcome] = None if target == "-" else tuple(json.loads(target))
    return [(a, s, rates, targets) for (a, s), (rates, targets) in settings.items()]


def _calibration_figure(rows: list[list], out: Path) -> None:
    """Nominal against observed coverage of every interval checked at several levels, and the
    false-positive rate of every test under its null, with their Monte-Carlo errors."""
    from matplotlib.figure import Figure

    results = _table_rates(rows)
    fig = Figure(figsize=(11, 4.8))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    nominal = sorted((*LEVELS, 0.95))
    for analysis, setting, rates, _ in results:
        keys = [f"covered_{level:g}" if level != 0.95 else "covered" for level in nominal]
        if not all(k in rates for k in keys):
            continue
        observed = [rates[k] for k in keys]
        left.errorbar(nominal, [r.value for r in observed],
                      yerr=[2 * r.error for r in observed], marker="o", ms=3, capsize=2, lw=0.8,
                      label=f"{analysis}: {setting}")  # fmt: skip
    left.plot([0.45, 1.0], [0.45, 1.0], color="grey", lw=0.8, ls="--")
    left.axhspan(*COVERAGE_TARGET, color="green", alpha=0.1)
    left.set_xlabel("nominal coverage")
    left.set_ylabel("observed coverage (± 2 MC errors)")
    left.set_title("interval coverage of the population value")
    left.legend(fontsize=6, loc="lower right")
    tests = [
        (f"{a}: {s}" + ("" if k == "rejected" else f" ({k})"), rates[k])
        for a, s, rates, targets in results
        for k, t in targets.items()
        if t == FPR_TARGET
    ]
    y = np.arange(len(tests))
    right.errorbar([r.value for _, r in tests], y, xerr=[2 * r.error for _, r in tests],
                   fmt="o", ms=3, capsize=2)  # fmt: skip
    right.axvspan(*FPR_TARGET, color="green", alpha=0.1)
    right.axvline(0.05, color="grey", lw=0.8, ls="--")
    right.set_yticks(y, [label for label, _ in tests], fontsize=6)
    right.invert_yaxis()
    right.set_xlabel("false-positive rate at alpha = 0.05 (± 2 MC errors)")
    right.set_title("tests under their null")
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=120)


def _chosen(name: str, only: list[str]) -> bool:
    return not only or any(part in name for part in only)


def _kept_rows(out: Path, rerun: set[tuple[str, str]]) -> list[list]:
    """The rows of ``out/table.csv`` whose setting is not run again (none if there is no table)."""
    if not (out / "table.csv").exists():
        return []
    with open(out / "table.csv", newline="") as f:
        return [row for row in list(csv.reader(f))[1:] if tuple(row[:2]) not in rerun]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=500, help="studies per setting")
    parser.add_argument("--power-studies", type=int, default=200, help="studies per power point")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for table.csv, calibration.png, power.png"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only the settings whose 'analysis: setting' contains this (repeatable); with"
        " --out, the other settings' rows of an existing table.csv are kept",
    )
    parser.add_argument("--jobs", type=int, default=1, help="settings run in parallel processes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    settings = _settings()
    chosen = [i for i, (a, s, *_) in enumerate(settings) if _chosen(f"{a}: {s}", args.only)]
    order = {(a, s): i for i, (a, s, *_) in enumerate(settings)}
    kept = _kept_rows(args.out, {settings[i][:2] for i in chosen}) if args.out else []
    header = ["analysis", "setting", "outcome", "rate", "mc_error", "n_studies", "target",
              "mark", "cpu_seconds"]  # fmt: skip
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        done = pool.imap_unordered(_setting_rates, [(i, args.studies) for i in chosen])
        power_tasks = [(n, cka, args.power_studies) for n in POWER_NS for cka in POWER_SIZES]
        power = pool.map_async(_power_rate, power_tasks if not args.only else [])
        print(" ".join(header), flush=True)
        records: dict[int, list[list]] = {}
        for i, rates, seconds in done:
            analysis, setting, _, targets = settings[i]
            records[i] = []
            for outcome, target in targets.items():
                rate = rates[outcome]
                shown = "-" if target is None else f"[{target[0]:.3f}, {target[1]:.3f}]"
                records[i].append([analysis, setting, outcome, f"{rate.value:.4f}",
                                   f"{rate.error:.4f}", rate.n, shown, _mark(rate, target),
                                   f"{seconds:.1f}"])  # fmt: skip
                print(" | ".join(map(str, records[i][-1])), flush=True)
            if args.out is not None:  # rewritten as settings finish, in the settings' order
                rows = sorted([*kept, *(r for j in records for r in records[j])],
                              key=lambda r: order.get((r[0], r[1]), len(order)))  # fmt: skip
                with open(args.out / "table.csv", "w", newline="") as f:
                    writer = csv.writer(f)
                    writer.writerow(header)
                    writer.writerows(rows)
        power_rates = power.get()
    if not args.only:
        print("\npower of the cross-modal cka-linear test (alpha = 0.05)")
        points = [(n, cka, r) for (n, cka, _), r in zip(power_tasks, power_rates, strict=True)]
        for n, cka, rate in points:
            print(f"  n={n:3d} population CKA {cka:.2f}: {rate}")
        if args.out is not None:
            _power_figure(points, args.out)
    if args.out is not None:
        with open(args.out / "table.csv", newline="") as f:
            _calibration_figure(list(csv.reader(f))[1:], args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
