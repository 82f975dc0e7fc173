"""Simulation-based calibration of every p-value and interval the analyses report.

Each setting repeats one analysis on data drawn from a population whose truth is known
(:mod:`geomalign.simulation`) and prints, with the Monte-Carlo (binomial) error of each rate:

- the false-positive rate at alpha = 0.05 where the null holds (target [0.035, 0.065]);
- the coverage of the 95% intervals of the population value (target [0.93, 0.97]);
- the family-wise error over the layers of a null curve, unadjusted and with Holm / BH;
- how often a flat or monotone ID profile is called an abstraction phase;
- power against effect size and n (written as ``power.png`` with ``--out``).

A rate outside its target is marked ``MISS``; the regime column says where the number holds.
Run ``python benchmarks/calibration_bench.py --out calibration/`` (>= 500 studies per setting,
about an hour on one core); ``--studies 100 --power-studies 50`` for a quick look.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from geomalign.simulation import (
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
    tuning_change_study,
)

FPR_TARGET, COVERAGE_TARGET = (0.035, 0.065), (0.93, 0.97)
WIDTH = {"n_latent": 3, "n_features_x": 8, "n_features_y": 8}


def _views(cka: float, seed: int = 0) -> GaussianViews:
    return GaussianViews.random(linear_cka=cka, random_state=seed, **WIDTH)


def _settings() -> list[tuple[str, str, object, dict[str, tuple[float, float] | None]]]:
    """(analysis, setting, study, {outcome: target or None (reported only)})."""
    out: list = []

    def add(analysis: str, setting: str, study: object, **targets: object) -> None:
        out.append((analysis, setting, study, targets))

    fpr, cov = {"rejected": FPR_TARGET}, {"covered": COVERAGE_TARGET}
    both = {**fpr, **cov}
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
        add("tuning-change cka-linear", f"no change (CKA 0.5 both), n={n}", study, **both)
    study = tuning_change_study(_views(0.3), _views(0.5, 5), 160)
    add("tuning-change cka-linear", "change 0.3 -> 0.5, n=160", study, **cov)
    study = best_match_study(null4, 60)
    add("best-match (max over 4 layers)", "independent views, n=60", study,
        rejected=FPR_TARGET, any_rejected=None)  # fmt: skip
    study = curve_family_study(null8, 60)
    add("curve of 8 layers", "all layers null, n=60", study,
        any_unadjusted=None, any_holm=FPR_TARGET, any_bh=FPR_TARGET)  # fmt: skip
    study = curve_family_study(planted, 60)
    add("curve of 8 layers", "3 of 8 layers planted (0.3, 0.5, 0.3), n=60", study,
        any_holm=(0.0, 0.065), any_bh=None, missed_holm=None)  # fmt: skip
    for dims, what in (([3] * 5, "flat: 5 layers of a 3-torus"),
                       ([2, 3, 4, 5, 6], "monotone: tori of dimension 2..6"),
                       ([2, 4, 8, 4, 2], "planted peak: dimensions 2, 4, 8, 4, 2")):  # fmt: skip
        study = id_profile_study(dims, 300)
        add("ID profile twonn", f"{what}, n=300", study, phase=None, clear_phase=None, **cov)
    for groups, size in ((10, 4), (40, 4)):
        study = effect_study(groups, size)
        add("effect curve window", f"no effect, {groups} images x {size} items", study, **both)
    study = probe_study(60, 5, n_permutations=39)
    add("probe", "label independent of X, n=60, 5 features", study, **fpr)
    return out


def _mark(rate: Rate, target: tuple[float, float] | None) -> str:
    if target is None:
        return ""
    return "ok" if target[0] <= rate.value <= target[1] else "MISS"


def _power(n_studies: int, out: Path | None) -> list[tuple]:
    rows = []
    sizes, ns = (0.0, 0.05, 0.1, 0.2, 0.3), (20, 40, 80)
    for n in ns:
        for cka in sizes:
            study = cross_modal_study(_views(cka), n, n_resamples=0)
            rows.append((n, cka, run_studies(study, n_studies, random_state=7)["rejected"]))
    if out is not None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        for n in ns:
            rates = [r for m, _, r in rows if m == n]
            ax.errorbar(sizes, [r.value for r in rates], yerr=[r.error for r in rates],
                        marker="o", capsize=2, label=f"n = {n}")  # fmt: skip
        ax.axhline(0.05, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("population linear CKA")
        ax.set_ylabel("power at alpha = 0.05")
        ax.set_title("cross-modal cka-linear permutation test (99 permutations)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "power.png", dpi=120)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=500, help="studies per setting")
    parser.add_argument("--power-studies", type=int, default=200, help="studies per power point")
    parser.add_argument("--out", type=Path, default=None, help="folder for table.csv, power.png")
    parser.add_argument("--only", default="", help="run only settings whose analysis has this")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    records = []
    print(f"{'analysis':34} {'setting':46} {'outcome':14} {'rate':>7} {'MC err':>7} "
          f"{'n':>5} target")  # fmt: skip
    for analysis, setting, study, targets in _settings():
        if args.only not in analysis:
            continue
        start = time.perf_counter()
        rates = run_studies(study, args.studies, random_state=0)  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        for outcome, target in targets.items():
            rate = rates[outcome]
            shown = "-" if target is None else f"[{target[0]:.3f}, {target[1]:.3f}]"
            print(f"{analysis:34} {setting:46} {outcome:14} {rate.value:7.3f} {rate.error:7.3f} "
                  f"{rate.n:5d} {shown} {_mark(rate, target)}", flush=True)  # fmt: skip
            records.append([analysis, setting, outcome, rate.value, rate.error, rate.n,
                            shown, _mark(rate, target), f"{seconds:.1f}"])  # fmt: skip
    if not args.only:
        print("\npower of the cross-modal cka-linear test (alpha = 0.05)")
        for n, cka, rate in _power(args.power_studies, args.out):
            print(f"  n={n:3d} population CKA {cka:.2f}: {rate}")
    if args.out is not None:
        with open(args.out / "table.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["analysis", "setting", "outcome", "rate", "mc_error", "n_studies",
                             "target", "mark", "seconds"])  # fmt: skip
            writer.writerows(records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
