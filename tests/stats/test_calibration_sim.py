"""A fast subset of benchmarks/calibration_bench.py: rates checked against binomial bands."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign.metrics import get
from geomalign.simulation import (
    GaussianViews,
    LayeredViews,
    Rate,
    best_match_study,
    cross_modal_study,
    curve_family_study,
    effect_study,
    id_profile_study,
    run_studies,
    torus,
    tuning_change_family_study,
)

WIDTH = {"n_latent": 3, "n_features_x": 8, "n_features_y": 8}


def _within(rate: Rate, expected: float, z: float = 3.5) -> bool:
    low, high = rate.band(expected, z=z)
    return low <= rate.value <= high


def test_population_cka_is_the_large_sample_limit():
    rng = np.random.default_rng(0)
    for target in (0.0, 0.2, 0.6):
        views = GaussianViews.random(linear_cka=target, random_state=1, **WIDTH)
        assert views.linear_cka == pytest.approx(target, abs=1e-9)
        X, Y = views.sample(20000, rng)
        assert get("cka-linear-debiased")(X, Y) == pytest.approx(target, abs=0.01)
    with pytest.raises(ValueError, match="linear_cka must lie in"):
        GaussianViews.random(linear_cka=0.999999, random_state=1, **WIDTH)


def test_layered_views_share_their_latent_factors():
    layers = LayeredViews.planted([0.0, 0.5, 0.5], random_state=0, **WIDTH)
    np.testing.assert_allclose(layers.profile, [0.0, 0.5, 0.5], atol=1e-9)
    Xs, _ = layers.sample(3000, np.random.default_rng(1))
    # two layers reading the same factors are aligned with each other
    assert get("cka-linear")(Xs[1], Xs[2]) > 0.3


def test_torus_has_its_intrinsic_dimension():
    X = torus(2000, 3, np.random.default_rng(0), n_features=20)
    assert get("id-twonn")(X) == pytest.approx(3.0, abs=0.3)


def test_rate_and_its_binomial_error():
    rate = Rate(25, 500)
    assert rate.value == 0.05
    assert rate.error == pytest.approx(np.sqrt(0.05 * 0.95 / 500))
    low, high = rate.band(0.05, z=2.0)
    assert low == pytest.approx(0.05 - 2 * np.sqrt(0.05 * 0.95 / 500))
    assert high == pytest.approx(0.05 + 2 * np.sqrt(0.05 * 0.95 / 500))


def test_cross_modal_permutation_test_holds_its_level():
    views = GaussianViews.random(linear_cka=0.0, random_state=0, **WIDTH)
    study = cross_modal_study(views, 40, n_permutations=49, n_resamples=0)
    rate = run_studies(study, 150, random_state=1)["rejected"]
    assert _within(rate, 0.05)


def test_debiased_cka_interval_covers_the_population_value():
    views = GaussianViews.random(linear_cka=0.5, random_state=0, **WIDTH)
    study = cross_modal_study(
        views, 160, measure="cka-linear-debiased", n_permutations=0, n_resamples=49
    )
    rate = run_studies(study, 60, random_state=2)["covered"]
    assert _within(rate, 0.95)


def test_holm_controls_the_family_wise_error_of_a_null_curve():
    layers = LayeredViews.planted([0.0] * 8, random_state=2, **WIDTH)
    rates = run_studies(curve_family_study(layers, 40, n_permutations=49), 80, random_state=3)
    assert rates["any_holm"].value <= rates["any_holm"].band(0.05)[1]
    assert rates["any_bh"].value <= rates["any_bh"].band(0.05)[1]
    assert rates["any_max_t"].value <= rates["any_max_t"].band(0.05)[1]
    # without a correction, a false positive somewhere on the curve is the rule
    assert rates["any_unadjusted"].value > 0.12


def test_max_t_controls_the_family_wise_error_of_a_null_tuning_change_curve():
    base = LayeredViews.planted([0.5] * 4, random_state=11, **WIDTH)
    tuned = LayeredViews.planted([0.5] * 4, random_state=12, **WIDTH)
    study = tuning_change_family_study(base, tuned, 40, n_resamples=39)
    rates = run_studies(study, 100, random_state=4)
    assert rates["any_max_t"].value <= rates["any_max_t"].band(0.05)[1]
    # Holm over 4 layers of 39 two-sided resamples cannot go below 4 * 2 / 40 = 0.2
    assert rates["any_holm"].value == 0.0
    assert rates["any_unadjusted"].value > 0.1


def test_best_match_max_over_layers_null_holds_its_level():
    layers = LayeredViews.planted([0.0] * 3, random_state=4, **WIDTH)
    rate = run_studies(best_match_study(layers, 40, n_permutations=19), 50, random_state=5)
    assert _within(rate["rejected"], 0.05)


def test_effect_curve_sign_flip_and_cluster_interval():
    rates = run_studies(effect_study(30, 4, n_resamples=99, n_permutations=99), 300, random_state=6)
    assert _within(rates["rejected"], 0.05)
    assert _within(rates["covered"], 0.95)


def test_phase_calls_on_flat_and_peaked_profiles():
    flat = run_studies(id_profile_study([3] * 5, 200, n_resamples=19), 16, random_state=7)
    peaked = run_studies(id_profile_study([2, 4, 8, 4, 2], 200, n_resamples=19), 6, random_state=8)
    # a flat profile has an interior local maximum by chance most of the time; the phase test
    # (the peak above both ends, max-T over the layers) keeps it from being called clear
    assert flat["phase"].value > 0.5
    assert flat["clear_phase"].value <= 1 / 16
    assert peaked["clear_phase"].value == 1.0
