"""The statistics rules: add-one p-values, centred intervals, resampling, adjustments."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign import stats


def test_p_value_counts_ties_and_never_reaches_zero():
    null = np.array([0.0, 1.0, 2.0, 3.0])
    assert stats.p_value(null, 2.0, alternative="greater") == 3 / 5
    assert stats.p_value(null, 2.0, alternative="less") == 4 / 5
    assert stats.p_value(null, 10.0, alternative="greater") == 1 / 5
    assert stats.p_value(null, -1.0, alternative="two-sided") == 2 / 5
    assert stats.p_value(null, 1.5, alternative="two-sided") == 1.0
    # a null draw equal to the observation up to rounding is a tie
    assert stats.p_value(np.array([0.1 + 0.2]), 0.3, alternative="greater") == 1.0
    with pytest.raises(ValueError, match="alternative must be one of"):
        stats.p_value(null, 1.0, alternative="bigger")


def test_p_value_is_uniform_under_the_null():
    rng = np.random.default_rng(0)
    p = [
        stats.p_value(rng.normal(size=99), rng.normal(), alternative="greater") for _ in range(2000)
    ]
    assert abs(np.mean(np.array(p) <= 0.05) - 0.05) < 0.015
    assert abs(np.mean(p) - 0.5) < 0.03


def test_interval_is_the_percentile_interval_of_the_centred_resamples():
    rng = np.random.default_rng(1)
    resamples = rng.normal(loc=3.0, size=1001)
    low, high = stats.interval(1.0, resamples, confidence=0.9)
    shifted = resamples - resamples.mean() + 1.0
    np.testing.assert_allclose(
        [low, high], np.quantile(shifted, [0.05, 0.95], method="weibull"), rtol=0, atol=1e-15
    )
    assert low < 1.0 < high
    # where resampling does not bias the statistic, it is the percentile interval
    unbiased = resamples - resamples.mean() + 1.0
    np.testing.assert_allclose(
        stats.interval(1.0, unbiased, confidence=0.9),
        np.quantile(unbiased, [0.05, 0.95], method="weibull"),
    )
    with pytest.raises(ValueError, match=r"confidence must be a float in \(0, 1\)"):
        stats.interval(1.0, resamples, confidence=95)


def test_interval_quantiles_sit_at_their_expected_coverage():
    # the q quantile of B resamples is order statistic q (B + 1): 2 and 98 of 99 at 96%
    resamples = np.arange(1.0, 100.0)
    np.testing.assert_allclose(stats.interval(50.0, resamples, confidence=0.96), [2.0, 98.0])
    # so that a new draw from the resamples' own distribution falls inside at the nominal rate
    # (numpy's default positions, 1 + q (B - 1), give 0.86 here)
    rng = np.random.default_rng(2)
    inside = []
    for _ in range(4000):
        draws = rng.normal(size=20)
        low, high = stats.interval(float(draws[:19].mean()), draws[:19], confidence=0.9)
        inside.append(low <= draws[19] <= high)
    assert abs(np.mean(inside) - 0.9) < 0.02


def test_resample_indices():
    rng = np.random.default_rng(0)
    halves = list(stats.resample_indices(11, 30, scheme="half-sampling", rng=rng))
    assert all(len(h) == 5 and len(set(h)) == 5 and (np.diff(h) > 0).all() for h in halves)
    boots = list(stats.resample_indices(11, 200, scheme="bootstrap", rng=rng))
    assert all(len(b) == 11 for b in boots)
    assert any(len(set(b)) < 11 for b in boots)  # with replacement
    assert stats.resample_size(11, "half-sampling") == 5
    with pytest.raises(ValueError, match="scheme must be one of"):
        stats.resample_size(11, "jackknife")


def test_cluster_bootstrap_resamples_whole_groups():
    rng = np.random.default_rng(0)
    grouping = stats.Grouping.from_labels(np.repeat(["a", "b", "c"], [1, 2, 3]))
    values = np.repeat([0.0, 1.0, 2.0], [1, 2, 3])
    means = stats.cluster_means(values, grouping, stats.cluster_bootstrap(3, 300, rng))
    # every resampled mean is a size-weighted mean of whole groups
    possible = {
        round(float(np.sum([values[grouping.codes == g].sum() for g in draw]))
              / float(np.sum(grouping.sizes[list(draw)])), 12)
        for draw in np.ndindex(3, 3, 3)
    }  # fmt: skip
    assert set(np.round(means, 12)) <= possible


def test_permutation_and_sign_flip_nulls():
    rng = np.random.default_rng(0)
    x = np.arange(20.0)
    null = stats.permutation_null(lambda perm: float(np.corrcoef(x, x[perm])[0, 1]), 20, 200, rng)
    assert null.shape == (200,)
    assert abs(null.mean()) < 0.1
    flips = stats.sign_flip_null(np.ones(10), 500, rng)
    assert set(np.unique(flips)) <= set(range(-10, 11, 2))
    assert abs(flips.mean()) < 0.5


def test_max_null_takes_the_best_statistic_in_its_direction():
    null = np.array([[0.1, 0.5, 0.3], [0.4, 0.2, 0.0]])
    np.testing.assert_array_equal(stats.max_null(null, alternative="greater"), [0.5, 0.4])
    np.testing.assert_array_equal(stats.max_null(null, alternative="less"), [0.1, 0.0])
    with pytest.raises(ValueError, match="absolute statistics"):
        stats.max_null(null, alternative="two-sided")


def test_holm_and_benjamini_hochberg_known_answers():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> cummax
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4 -> 0.02, 0.02, 0.04, 0.04 -> cummin from the top
    np.testing.assert_allclose(stats.benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(stats.holm([0.9, 0.8]), [1.0, 1.0])
    with pytest.raises(ValueError, match=r"p_values must lie in \[0, 1\]"):
        stats.holm([0.5, 1.5])


def test_family_wise_error_under_the_null():
    rng = np.random.default_rng(0)
    m, n_studies = 8, 400
    holm_hits = bh_hits = maxt_hits = 0
    for _ in range(n_studies):
        observed = rng.normal(size=m)
        null = rng.normal(size=(199, m))
        p = np.array(
            [stats.p_value(null[:, j], observed[j], alternative="greater") for j in range(m)]
        )
        holm_hits += bool((stats.holm(p) <= 0.05).any())
        bh_hits += bool((stats.benjamini_hochberg(p) <= 0.05).any())
        adjusted = stats.max_t_adjusted(observed, null, alternative="greater")
        maxt_hits += bool((adjusted <= 0.05).any())
        assert (adjusted >= p - 1e-12).all()
    # unadjusted, 1 - 0.95**8 = 34% of the studies would have a false positive
    for hits in (holm_hits, bh_hits, maxt_hits):
        assert hits / n_studies < 0.08


def test_max_t_adjusted_known_answer_and_shape_check():
    null = np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.2]])  # row maxima 0.2, 0.3, 0.2
    np.testing.assert_allclose(
        stats.max_t_adjusted([0.25, 0.5], null, alternative="greater"), [2 / 4, 1 / 4]
    )
    with pytest.raises(ValueError, match=r"null must have shape \(n_draws, m\)"):
        stats.max_t_adjusted([0.1, 0.2, 0.3], null, alternative="greater")


def test_adjust_and_the_p_value_floor():
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.adjust(p, method="holm"), stats.holm(p))
    np.testing.assert_allclose(stats.adjust(p, method="bh"), stats.benjamini_hochberg(p))
    np.testing.assert_allclose(stats.adjust(p, method="none"), p)
    with pytest.raises(ValueError, match="method must be one of"):
        stats.adjust(p, method="bonferroni")
    assert stats.p_value_floor(99) == 0.01
    assert stats.p_value_floor(99, alternative="two-sided") == 0.02
    # the floor is what p_value gives when every null draw is below the observation
    assert stats.p_value(np.zeros(99), 1.0, alternative="greater") == stats.p_value_floor(99)
    for m, alternative in ((1, "greater"), (9, "greater"), (9, "two-sided"), (33, "greater")):
        need = stats.draws_needed(m, 0.05, alternative=alternative)
        assert m * stats.p_value_floor(need, alternative=alternative) <= 0.05
        assert m * stats.p_value_floor(need - 1, alternative=alternative) > 0.05


def test_mean_interval_is_the_student_t_interval_of_the_mean():
    import scipy.stats

    from geomalign.stats import mean_interval

    values = np.array([0.41, 0.38, 0.47, 0.44])
    expected = scipy.stats.t.interval(
        0.9, len(values) - 1, loc=values.mean(), scale=scipy.stats.sem(values)
    )
    assert mean_interval(values, confidence=0.9) == pytest.approx(expected, rel=1e-12)
    low, high = mean_interval(values, confidence=0.99)
    assert low < expected[0] < expected[1] < high  # wider at a higher level
    assert mean_interval([0.5], confidence=0.95) == (0.5, 0.5)  # no spread from one seed
    with pytest.raises(ValueError, match=r"confidence must be a float in \(0, 1\)"):
        mean_interval(values, confidence=95)
