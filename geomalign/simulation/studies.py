"""Simulated studies: each analysis run on data drawn from a population whose truth is known.

A study draws one data set, runs the library entry point that produces an analysis's p-value
or interval, and returns what a calibration check counts: whether the test rejected at
``alpha``, whether the interval covered the population value. :func:`run_studies` repeats a
study and turns the counts into rates with their Monte-Carlo (binomial) error.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geomalign import stats
from geomalign.analysis import Calibration, abstraction_phase, id_profile, layer_map
from geomalign.analysis.evaluation import evaluate, paired_difference
from geomalign.analysis.results import IDProfile
from geomalign.analysis.table import ResultsTable
from geomalign.interventions.probes import probe_accuracy
from geomalign.metrics import get
from geomalign.simulation.populations import GaussianViews, LayeredViews, torus
from geomalign.store import ActivationStore

__all__ = [
    "LEVELS",
    "Rate",
    "best_match_study",
    "cross_modal_study",
    "curve_family_study",
    "effect_study",
    "id_profile_study",
    "probe_study",
    "run_studies",
    "tuning_change_family_study",
    "tuning_change_study",
]

#: One simulated study: a generator in, named outcomes (True/False, or None: not counted) out.
Study = Callable[[np.random.Generator], dict[str, bool | None]]


@dataclass(frozen=True)
class Rate:
    """How often an outcome held over simulated studies, with its Monte-Carlo error.

    Attributes
    ----------
    hits : int
        Studies in which the outcome held.
    n : int
        Studies counted.
    """

    hits: int
    n: int

    @property
    def value(self) -> float:
        """``hits / n`` (NaN when no study was counted)."""
        return self.hits / self.n if self.n else math.nan

    @property
    def error(self) -> float:
        """Binomial standard error ``sqrt(r (1 - r) / n)`` of the rate."""
        if not self.n:
            return math.nan
        r = self.value
        return math.sqrt(max(r * (1 - r), 0.25 / self.n) / self.n)

    def band(self, expected: float, *, z: float = 3.0) -> tuple[float, float]:
        """``expected -+ z`` binomial errors at ``expected``: where a calibrated rate lands."""
        half = z * math.sqrt(expected * (1 - expected) / self.n)
        return expected - half, expected + half

    def __str__(self) -> str:
        return f"{self.value:.3f} ± {self.error:.3f} (n={self.n})"


def run_studies(study: Study, n_studies: int, *, random_state: int = 0) -> dict[str, Rate]:
    """Repeat ``study`` ``n_studies`` times; the rate of each outcome it reports.

    Each study gets its own generator, spawned from ``random_state``, so that a setting's
    studies are reproducible one by one.
    """
    counts: dict[str, list[int]] = {}
    for seed in np.random.SeedSequence(random_state).spawn(n_studies):
        for name, outcome in study(np.random.default_rng(seed)).items():
            hits_n = counts.setdefault(name, [0, 0])
            if outcome is not None:
                hits_n[0] += int(bool(outcome))
                hits_n[1] += 1
    return {name: Rate(hits, n) for name, (hits, n) in counts.items()}


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


def _covers(low: float | None, high: float | None, truth: float | None) -> bool | None:
    if low is None or high is None or truth is None:
        return None
    return bool(low <= truth <= high)


def _rejects(p_value: float | None, alpha: float) -> bool | None:
    return None if p_value is None else bool(p_value <= alpha)


#: Nominal coverages at which studies also check their intervals (beside the 95% ``covered``).
LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.99)


def _level_outcomes(
    value: float, resamples: np.ndarray, truth: float | None
) -> dict[str, bool | None]:
    """``covered_<level>`` for each of :data:`LEVELS`: the same resamples at another coverage."""
    out: dict[str, bool | None] = {}
    for level in LEVELS:
        low, high = stats.interval(value, resamples, confidence=level)
        out[f"covered_{level:g}"] = _covers(low, high, truth)
    return out


def cross_modal_study(
    population: GaussianViews,
    n_samples: int,
    *,
    measure: str = "cka-linear",
    n_permutations: int = 99,
    n_resamples: int = 99,
    alpha: float = 0.05,
) -> Study:
    """One layer of a cross-modal curve: the measure with its permutation p-value and CI.

    Runs :func:`geomalign.analysis.evaluation.evaluate`, the evaluation
    :func:`~geomalign.analysis.cross_modal_curve` makes at each layer, for the p-value, and
    :func:`geomalign.stats.bootstrap_ci` (what ``evaluate`` runs for its CI) for the 95%
    interval (``covered``) and the same resamples at the other :data:`LEVELS`
    (``covered_0.5``, ...). Coverage is counted for the linear CKA measures only (the population
    value is known for them) and when ``n_resamples > 0``.
    """
    truth = population.linear_cka if measure.startswith("cka-linear") else None
    resolved = get(measure)

    def study(rng: np.random.Generator) -> dict[str, bool | None]:
        X, Y = population.sample(n_samples, rng)
        seed = _seed(rng)
        out: dict[str, bool | None] = {}
        if n_permutations:
            calibration = Calibration(n_permutations=n_permutations, random_state=seed)
            out["rejected"] = _rejects(evaluate(resolved, X, Y, calibration).p_value, alpha)
        if n_resamples and truth is not None:
            boot = stats.bootstrap_ci(resolved, X, Y, n_resamples=n_resamples, random_state=seed)
            out["covered"] = _covers(boot.ci_low, boot.ci_high, truth)
            out.update(_level_outcomes(boot.value, boot.resamples, truth))
        return out

    return study


def tuning_change_study(
    base: GaussianViews,
    tuned: GaussianViews,
    n_samples: int,
    *,
    measure: str = "cka-linear",
    n_resamples: int = 99,
    alpha: float = 0.05,
) -> Study:
    """One layer of a tuning-change curve: the paired difference, its p-value and CI.

    Both checkpoints' views of a sample read the same latent factors (the same image and
    caption enter both models); :func:`~geomalign.analysis.evaluation.paired_difference` is what
    :func:`~geomalign.analysis.tuning_change_curve` runs at each layer. The population value is
    ``tuned.linear_cka - base.linear_cka``.
    """
    truth = tuned.linear_cka - base.linear_cka
    resolved = get(measure)

    def study(rng: np.random.Generator) -> dict[str, bool | None]:
        k = base.A.shape[0]
        latent = (rng.standard_normal((n_samples, k)), rng.standard_normal((n_samples, k)))
        first = tuned.sample(n_samples, rng, latent=latent)
        second = base.sample(n_samples, rng, latent=latent)
        calibration = Calibration(n_resamples=n_resamples, random_state=_seed(rng))
        point = paired_difference(resolved, first, second, calibration)
        return {
            "rejected": _rejects(point.p_value, alpha),
            "covered": _covers(point.ci_low, point.ci_high, truth),
        }

    return study


def _write_store(path: Path, views: dict[tuple[str, str], Sequence[np.ndarray]]) -> None:
    """A store of one pooled view per ``(checkpoint, modality)``: ``views[...]`` per layer."""
    n = next(iter(views.values()))[0].shape[0]
    store = ActivationStore.create(path, [f"s{i}" for i in range(n)], overwrite=True)
    try:
        for checkpoint in dict.fromkeys(c for c, _ in views):
            store.add_checkpoint(checkpoint, model="simulated", n_layers=0, hidden_size=0)
        for (checkpoint, modality), layers in views.items():
            store.create_view(
                checkpoint,
                modality,
                "mean",
                layers=list(range(len(layers))),
                dim=layers[0].shape[1],
                dtype="float32",
            )
            store.write(checkpoint, modality, "mean", np.arange(n), np.stack(layers))
    finally:
        store.close()


def best_match_study(
    population: LayeredViews,
    n_samples: int,
    *,
    measure: str = "cka-linear",
    n_permutations: int = 99,
    alpha: float = 0.05,
    directory: str | Path | None = None,
) -> Study:
    """A layer map between two views and each layer's best match with its max-over-layers null.

    The views are written to a store and :func:`~geomalign.analysis.layer_map` is run on it.
    Outcomes: ``rejected`` (the first layer's best match called better than chance) and
    ``any_rejected`` (some layer's), meaningful as false positives when ``population`` is the null
    at every layer.
    """

    def study(rng: np.random.Generator) -> dict[str, bool | None]:
        Xs, Ys = population.sample(n_samples, rng)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            path = Path(tmp) / "views.h5"
            _write_store(path, {("m", "image"): Xs, ("m", "text"): Ys})
            calibration = Calibration(n_permutations=n_permutations, random_state=_seed(rng))
            table = layer_map(
                path, ("m", "image", "mean"), ("m", "text", "mean"), measure=measure,
                calibration=calibration,
            )  # fmt: skip
        p = [r.p_value for r in table.select(analysis="best-match") if r.p_value is not None]
        return {"rejected": _rejects(p[0], alpha), "any_rejected": min(p) <= alpha}

    return study


def id_profile_study(
    dimensions: Sequence[int],
    n_samples: int,
    *,
    measure: str = "id-twonn",
    n_features: int = 32,
    n_resamples: int = 49,
    directory: str | Path | None = None,
) -> Study:
    """An ID profile over layers of tori of the given dimensions, and its abstraction phase.

    Layer ``l`` holds a flat torus of dimension ``dimensions[l]`` (:func:`torus`), so a flat or
    monotone list has no phase. Runs :func:`~geomalign.analysis.id_profile` and
    :func:`~geomalign.analysis.abstraction_phase`; outcomes: ``phase`` (an interior peak was
    reported), ``clear_phase`` (one without the "may be noise" note), ``covered`` (the first
    layer's CI holds its true dimension).
    """

    def study(rng: np.random.Generator) -> dict[str, bool | None]:
        layers = [torus(n_samples, d, rng, n_features=n_features) for d in dimensions]
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            path = Path(tmp) / "views.h5"
            _write_store(path, {("m", "image"): layers})
            calibration = Calibration(n_resamples=n_resamples, random_state=_seed(rng))
            profile = id_profile(path, ("m", "image", "mean"), measure=measure,
                                 calibration=calibration)  # fmt: skip
        table = ResultsTable([*profile, *abstraction_phase(profile)])
        (found,) = IDProfile.from_table(table)
        first = profile.select(layer=0)[0]
        return {
            "phase": found.phase is not None,
            "clear_phase": found.phase is not None and not found.may_be_noise,
            "covered": _covers(first.ci_low, first.ci_high, float(dimensions[0])),
        }

    return study


def curve_family_study(
    population: LayeredViews,
    n_samples: int,
    *,
    measure: str = "cka-linear",
    n_permutations: int = 199,
    alpha: float = 0.05,
) -> Study:
    """Every layer of one cross-modal curve, with and without a correction across its layers.

    Each layer gets :func:`geomalign.stats.permutation_test` with the same seed (as
    :func:`~geomalign.analysis.evaluation.evaluate` seeds every layer of a curve), so draw ``i``
    permutes the samples of every layer alike and the per-layer nulls form the joint null that
    max-T needs. Outcomes: ``any_unadjusted``, ``any_holm``, ``any_bh``, ``any_max_t`` (some null
    layer called significant: the family-wise error when every layer is null) and
    ``missed_holm`` / ``missed_max_t`` (a layer whose population value is above 0 not called
    significant after the correction).
    """
    resolved = get(measure)
    null = population.profile == 0

    def study(rng: np.random.Generator) -> dict[str, bool | None]:
        Xs, Ys = population.sample(n_samples, rng)
        seed = _seed(rng)
        tests = [
            stats.permutation_test(resolved, X, Y, n_permutations=n_permutations, random_state=seed)
            for X, Y in zip(Xs, Ys, strict=True)
        ]
        p = np.array([t.p_value for t in tests])
        joint = np.stack([t.null for t in tests], axis=1)
        max_t = stats.max_t_adjusted(
            [t.value for t in tests], joint, alternative=tests[0].alternative
        )
        called = {
            "holm": stats.holm(p) <= alpha,
            "bh": stats.benjamini_hochberg(p) <= alpha,
            "max_t": max_t <= alpha,
        }
        out: dict[str, bool | None] = {"any_unadjusted": bool((p[null] <= alpha).any())}
        out.update({f"any_{name}": bool(c[null].any()) for name, c in called.items()})
        for name in ("holm", "max_t"):
            out[f"missed_{name}"] = bool((~called[name][~null]).any()) if (~null).any() else None
        return out

    return study


def tuning_change_family_study(
    base: LayeredViews,
    tuned: LayeredViews,
    n_samples: int,
    *,
    measure: str = "cka-linear",
    n_resamples: int = 99,
    alpha: float = 0.05,
    directory: str | Path | None = None,
) -> Study:
    """Every layer of one tuning-change curve, with and without a correction across its layers.

    Both checkpoints' layers read the same latent factors of each sample (the same inputs
    enter both models, and every layer of a model reads them). The views are written to a
    store and :func:`~geomalign.analysis.tuning_change_curve` runs on it, so the max-T p-values
    are the ones the curve notes (the same half-samples at every layer). Outcomes, as in
    :func:`curve_family_study`: ``any_unadjusted``, ``any_holm``, ``any_max_t`` (some layer
    without a change called changed: the family-wise error when no layer changed) and
    ``missed_holm`` / ``missed_max_t`` (a changed layer not called changed).
    """
    from geomalign.analysis import families, tuning_change_curve

    changed = np.abs(tuned.profile - base.profile) > 1e-9
    k = base.layers[0].A.shape[0]

    def study(rng: np.random.Generator) -> dict[str, bool | None]:
        latent = (rng.standard_normal((n_samples, k)), rng.standard_normal((n_samples, k)))
        (bx, by), (tx, ty) = (role.sample(n_samples, rng, latent=latent) for role in (base, tuned))
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            path = Path(tmp) / "views.h5"
            views: dict[tuple[str, str], Sequence[np.ndarray]] = {
                ("base", "image"): bx, ("base", "text"): by, ("tuned", "image"): tx,
                ("tuned", "text"): ty,
            }  # fmt: skip
            _write_store(path, views)
            calibration = Calibration(n_resamples=n_resamples, random_state=_seed(rng))
            rows = list(tuning_change_curve(path, base="base", tuned="tuned", measures=measure,
                                            calibration=calibration))  # fmt: skip
        p = np.array([r.p_value for r in rows], dtype=np.float64)
        out: dict[str, bool | None] = {"any_unadjusted": bool((p[~changed] <= alpha).any())}
        for name in ("holm", "max-t"):
            called = families.adjusted(rows, name)[0] <= alpha
            key = name.replace("-", "_")
            out[f"any_{key}"] = bool(called[~changed].any())
            out[f"missed_{key}"] = bool((~called[changed]).any()) if changed.any() else None
        return out

    return study


def effect_study(
    n_groups: int,
    group_size: int,
    *,
    effect: float = 0.0,
    group_sd: float = 0.5,
    item_sd: float = 1.0,
    n_resamples: int = 199,
    n_permutations: int = 199,
    alpha: float = 0.05,
) -> Study:
    """One window of an effect curve: paired item differences clustered by image.

    Each group (image) has a random effect of standard deviation ``group_sd`` and each item
    independent noise; the population mean difference is ``effect``. The statistics are those
    of every effect-curve row: the cluster-bootstrap interval of the mean
    (:func:`geomalign.stats.cluster_means`, :func:`geomalign.stats.interval`) and the paired
    sign-flip p-value over groups
    (:func:`geomalign.stats.sign_flip_p_value`); the interval is also
    checked at :data:`LEVELS`.
    """

    labels = np.repeat(np.arange(n_groups), group_size)
    grouping = stats.Grouping.from_labels(labels)

    def study(rng: np.random.Generator) -> dict[str, bool | None]:
        groups = group_sd * rng.standard_normal(n_groups)
        differences = effect + groups[labels] + item_sd * rng.standard_normal(labels.size)
        resamples = stats.cluster_bootstrap(n_groups, n_resamples, rng)
        boot = stats.cluster_means(differences, grouping, resamples)
        low, high = stats.interval(float(differences.mean()), boot, confidence=0.95)
        p = stats.sign_flip_p_value(differences, grouping, n_permutations, rng)
        return {
            "rejected": p <= alpha,
            "covered": low <= effect <= high,
            **_level_outcomes(float(differences.mean()), boot, effect),
        }

    return study


def probe_study(
    n_samples: int,
    n_features: int,
    *,
    separation: float = 0.0,
    n_classes: int = 2,
    n_splits: int = 3,
    n_permutations: int = 49,
    alpha: float = 0.05,
) -> Study:
    """A probe of a label from representations: its permutation p-value.

    Classes are Gaussian clouds whose means lie ``separation`` apart along random directions;
    ``separation=0`` makes the label independent of the representation (the null). Runs
    :func:`~geomalign.interventions.probe_accuracy`.
    """

    def study(rng: np.random.Generator) -> dict[str, bool | None]:
        y = np.arange(n_samples) % n_classes
        means = separation * rng.standard_normal((n_classes, n_features)) / np.sqrt(2)
        X = means[y] + rng.standard_normal((n_samples, n_features))
        result = probe_accuracy(
            X, y, n_splits=n_splits, n_permutations=n_permutations, random_state=_seed(rng)
        )
        return {"rejected": _rejects(result.p_value, alpha)}

    return study
