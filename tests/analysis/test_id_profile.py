import numpy as np
import pytest

from geomalign.analysis import (
    Calibration,
    ResultsTable,
    abstraction_phase,
    detect_abstraction_phase,
    id_profile,
    summarize,
)

from .planted import ID_BASE


def test_symmetric_peak_has_half_prominence_width():
    phase = detect_abstraction_phase([0, 1, 2, 3, 4], [2.0, 4.0, 10.0, 4.0, 2.0])
    # prominence 8 above both bases (2); half height 6 is crossed 2/3 of the way from 4 to 10.
    assert phase.peak_layer == 2
    assert phase.peak_value == 10.0
    assert phase.prominence == 8.0
    assert phase.onset == pytest.approx(1 + 1 / 3)
    assert phase.end == pytest.approx(3 - 1 / 3)
    assert phase.width == pytest.approx(4 / 3)


def test_phase_uses_real_layer_numbers_and_the_higher_base():
    # every fourth layer; left base 2, right base 6 -> prominence 14 - 6 = 8, half height 10.
    phase = detect_abstraction_phase([0, 4, 8, 12, 16], [2.0, 6.0, 14.0, 6.0, 6.0])
    assert phase.peak_layer == 8
    assert phase.prominence == 8.0
    assert phase.onset == pytest.approx(6.0)
    assert phase.end == pytest.approx(10.0)


def test_most_prominent_of_several_peaks_wins():
    phase = detect_abstraction_phase(range(7), [1, 3, 1, 9, 2, 2.5, 2])
    assert phase.peak_layer == 3


@pytest.mark.parametrize("profile", [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [3, 3, 3, 3], [1, 5]])
def test_no_interior_peak_gives_none(profile):
    assert detect_abstraction_phase(range(len(profile)), profile) is None


def test_min_prominence_filters_small_bumps():
    profile = [5.0, 5.4, 5.0, 5.1, 5.0]
    assert detect_abstraction_phase(range(5), profile).peak_layer == 1
    assert detect_abstraction_phase(range(5), profile, min_prominence=1.0) is None


def test_detect_rejects_bad_profiles():
    with pytest.raises(ValueError, match="strictly increasing"):
        detect_abstraction_phase([0, 2, 1], [1, 2, 1])
    with pytest.raises(ValueError, match=r"finite or NaN \(undefined\); got Inf at layers \[1\]"):
        detect_abstraction_phase([0, 1, 2], [1, np.inf, 1])
    with pytest.raises(ValueError, match="same length"):
        detect_abstraction_phase([0, 1, 2], [1, 2])


def test_id_profile_recovers_planted_dimensions_and_peaks(planted_store):
    cal = Calibration(n_resamples=39)  # the phase test's p-value cannot go below 1 / 40
    profiles = ResultsTable()
    for ckpt in ("base", "tuned"):
        profiles.extend(
            id_profile(planted_store, (ckpt, "image", "mean"), measure="id-twonn", calibration=cal)
        )
    base = sorted(profiles.select(checkpoint="base"), key=lambda r: r.layer)
    estimates = np.array([r.value for r in base])
    # TwoNN on 160 Gaussian points: close for small d, biased low for d = 12
    np.testing.assert_allclose(estimates[:3], ID_BASE[:3], rtol=0.35)
    assert all(r.kind == "dimension" and r.ci_low <= r.ci_high for r in base)
    phases = abstraction_phase(profiles)
    peak = {r.checkpoint: r.value for r in phases.select(statistic="peak_layer")}
    assert peak == {"base": 3.0, "tuned": 4.0}
    onset = phases.select(checkpoint="base", statistic="onset")[0].value
    assert 2.0 <= onset < 3.0
    profiles.extend(phases)
    assert "clear peaks: base at layer 3, tuned at layer 4" in summarize(profiles)


def test_flat_profile_reports_no_phase():
    from geomalign.analysis import Result

    flat = ResultsTable(
        Result("id-profile", "id-twonn", "c", "image/mean", layer, 5.0 + layer)
        for layer in range(4)
    )
    (row,) = abstraction_phase(flat)
    assert np.isnan(row.value)
    assert "no interior peak" in row.notes
    with pytest.raises(ValueError, match="no 'id-profile' rows"):
        abstraction_phase(ResultsTable())


def test_estimator_warnings_become_notes(tmp_path):
    from geomalign.store import ActivationStore

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    X[50:] = X[:10]  # ten exact duplicates, as identical captions give
    path = tmp_path / "dups.h5"
    with ActivationStore.create(path, [f"s{i}" for i in range(60)]) as store:
        store.add_checkpoint("base", model="m")
        store.create_view("base", "text", "mean", layers=[0], dim=5)
        store.write("base", "text", "mean", np.arange(60), X[None])
    (row,) = id_profile(
        path, ("base", "text", "mean"), measure="id-twonn", calibration=Calibration(n_resamples=4)
    )
    assert "warning: 10 of 60 rows of X are duplicates" in row.notes
    assert "warnings in resamples" in row.notes
    assert np.isfinite(row.value)


def test_phase_within_the_ci_is_flagged():
    from geomalign.analysis import Result, summarize

    def profile(half_width):
        return ResultsTable(
            Result(
                "id-profile",
                "id-twonn",
                "c",
                "image/mean",
                layer,
                value,
                ci_low=value - half_width,
                ci_high=value + half_width,
            )
            for layer, value in enumerate([4.0, 5.0, 6.0, 5.0, 4.0])
        )

    assert "may be noise" not in abstraction_phase(profile(0.5))[0].notes
    noisy = abstraction_phase(profile(3.0))
    assert (
        "may be noise: the CI at the peak (from 3) overlaps the CI at its base, layer 0 (to 7)"
        in (noisy[0].notes)
    )
    # a peak more prominent than one half-width is still noise while the two CIs overlap
    assert "may be noise" in abstraction_phase(profile(1.5))[0].notes
    table = profile(3.0)
    table.extend(noisy)
    assert "CI overlaps its base's: may be noise" in summarize(table)


def _phase_calls(profile, n_studies, rng, n=100, n_draws=99):
    """How often the phase test calls the detected peak of ``profile`` clear, when each layer's
    estimate is a mean of n noisy rows (independent layers) with joint half-sample draws."""
    from geomalign.analysis.id_profile import phase_p_values

    calls = 0
    for _ in range(n_studies):
        rows = np.asarray(profile) + rng.standard_normal((n, len(profile)))
        halves = [rng.choice(n, n // 2, replace=False) for _ in range(n_draws)]
        draws = np.stack([rows[h].mean(axis=0) for h in halves])
        values = rows.mean(axis=0)
        phase = detect_abstraction_phase(np.arange(len(profile)), values)
        if phase is not None:
            calls += phase_p_values(values, draws)[phase.peak_layer] <= 0.05
    return calls / n_studies


def test_phase_test_holds_its_level_on_33_layers_and_finds_a_hump():
    rng = np.random.default_rng(0)
    flat = _phase_calls(np.zeros(33), 150, rng)
    rising = _phase_calls(np.linspace(0, 1, 33), 150, rng)
    # 150 studies: 0.05 + 3 binomial errors; the old CI rule's expected rate here was 20%
    assert flat <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 150)
    assert rising <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 150)
    # a peak 0.6 above both ends: 4.2 standard errors of a difference of two layers at n = 100
    hump = 0.6 * (1 - np.abs(np.linspace(-1, 1, 33)))
    assert _phase_calls(hump, 30, rng) >= 0.9


def test_phase_p_values_floor_and_ends():
    from geomalign.analysis.id_profile import phase_p_values

    rng = np.random.default_rng(1)
    draws = 0.1 * rng.standard_normal((19, 5))
    p = phase_p_values(np.array([1.0, 2.0, 9.0, 2.0, 1.0]), draws)
    assert np.isnan(p[[0, -1]]).all()  # the ends are never a peak
    assert p[2] == pytest.approx(1 / 20)
    # rising above one end only (a monotone profile) is no peak
    assert np.nanmin(phase_p_values(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), draws)) == 1.0
