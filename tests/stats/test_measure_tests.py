import importlib

import numpy as np
import pytest
import torch

from geomalign.metrics import Measure, get
from geomalign.stats import bootstrap_ci, permutation_test, resample_indices
from geomalign.stats._resampling import drawn_permutations, drawn_resamples

cka_module = importlib.import_module("geomalign.metrics._cka_resampled")
knn_module = importlib.import_module("geomalign.metrics.knn")

UNPAIRED = Measure("mean-gap", "distance", 2, lambda X, Y: float(abs(X.mean() - Y.mean())),
                   "difference of the grand means", paired=False)  # fmt: skip


def _views(seed, n=120, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    Y = X @ rng.standard_normal((6, 8)) + noise * rng.standard_normal((n, 8))
    return X, Y


@pytest.mark.parametrize(
    "name", ["cka-linear", "cka-linear-debiased", "cka-rbf", "mutual-knn", "cycle-knn", "cknna"]
)
def test_fast_null_equals_recomputing_the_measure(name):
    X, Y = _views(0, n=60)
    m = get(name)
    fast = permutation_test(m, X, Y, n_permutations=5, random_state=3)
    slow_measure = Measure(m.name, m.kind, m.n_views, m.func, m.description, m.params)
    slow = permutation_test(slow_measure, X, Y, n_permutations=5, random_state=3)
    assert fast.value == pytest.approx(slow.value, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(fast.null, slow.null, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["cka-linear", "cka-linear-debiased", "mutual-knn", "cycle-knn"])
def test_permutations_evaluated_together_in_chunks_equal_one_at_a_time(name, monkeypatch):
    # 30 rows of width 48: linear CKA in the Gram form, whose permuted Gram entries are gathered
    # for all permutations at once; small chunks split the permutations into several gathers
    X, Y = _views(4, n=30)
    X, Y = np.hstack([X] * 8), np.hstack([Y] * 6)
    m = get(name)
    perms = np.stack([np.random.default_rng(i).permutation(30) for i in range(7)])
    at = m.shuffled(X, Y, **m.params)
    together = at(perms)
    monkeypatch.setattr(cka_module, "_PERMUTED_BYTES", 8 * 30 * 30 * 2)
    monkeypatch.setattr(knn_module, "_CHUNK_ENTRIES", 30 * 10 * 10 * 3)
    chunked = m.shuffled(X, Y, **m.params)(perms)
    one_by_one = [m(X, Y[perm]) for perm in perms]
    np.testing.assert_allclose(together, one_by_one, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(chunked, one_by_one, rtol=1e-12, atol=1e-14)
    assert at(np.arange(30)[None, :])[0] == pytest.approx(m(X, Y), rel=1e-12)


def test_seeded_draws_are_the_generator_s_and_are_not_shared_by_reference():
    perms = drawn_permutations(25, 6, random_state=5)
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(perms, [rng.permutation(25) for _ in range(6)])
    halves = drawn_resamples(25, 6, scheme="half-sampling", random_state=5)
    rng = np.random.default_rng(5)
    expected = list(resample_indices(25, 6, scheme="half-sampling", rng=rng))
    np.testing.assert_array_equal(halves, expected)
    halves[:] = 0  # a caller's copy: the next draw of the same seed is unchanged
    np.testing.assert_array_equal(
        drawn_resamples(25, 6, scheme="half-sampling", random_state=5), expected
    )
    rng = np.random.default_rng(5)  # a generator is drawn from, and advanced
    np.testing.assert_array_equal(drawn_permutations(25, 2, random_state=rng), perms[:2])
    np.testing.assert_array_equal(rng.permutation(25), perms[2])


def test_aligned_views_are_significant_and_null_is_near_chance():
    X, Y = _views(1, n=200)
    r = permutation_test("mutual-knn", X, Y, n_permutations=199, random_state=0)
    assert r.alternative == "greater"
    assert r.p_value == pytest.approx(1 / 200)
    assert r.null_mean == pytest.approx(10 / 199, abs=0.02)
    assert r.null_std > 0
    assert r.null.shape == (199,)
    assert r.n_permutations == 199


def test_unrelated_views_give_uniform_p_values():
    rng = np.random.default_rng(2)
    p_values = []
    for _ in range(30):
        X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 3))
        p_values.append(permutation_test("cka-linear", X, Y, n_permutations=49,
                                         random_state=rng).p_value)  # fmt: skip
    p_values = np.array(p_values)
    assert ((p_values > 0) & (p_values <= 1)).all()
    assert 0.3 < p_values.mean() < 0.7
    assert (p_values < 0.05).mean() < 0.2


def test_distance_measures_use_the_lower_tail():
    X, Y = _views(3, n=150, noise=0.3)
    r = permutation_test("information-imbalance", X, Y, n_permutations=19, random_state=0)
    assert r.alternative == "less"
    assert r.value < r.null.min()
    assert r.p_value == pytest.approx(1 / 20)


def test_permutation_test_is_reproducible_and_accepts_torch():
    X, Y = _views(4, n=50)
    a = permutation_test("cka-linear", X, Y, n_permutations=20, random_state=7)
    b = permutation_test("cka-linear", torch.from_numpy(X), Y, n_permutations=20, random_state=7)
    np.testing.assert_allclose(a.null, b.null, rtol=1e-12)


def _bootstrapped(name):
    """The registry measure ``name`` resampled by the ordinary bootstrap."""
    m = get(name)
    return Measure(m.name, m.kind, m.n_views, m.func, m.description, m.params)


@pytest.mark.parametrize(
    ("measure", "scheme"),
    [("cka-linear", "half-sampling"), ("distance-correlation", "bootstrap")],
)
def test_bootstrap_ci_contains_value_and_narrows_with_n(measure, scheme):
    widths = []
    for n in (60, 600):
        X, Y = _views(5, n=n)
        r = bootstrap_ci(measure, X, Y, n_resamples=100, random_state=0)
        assert r.ci_low <= r.value <= r.ci_high
        assert r.resampling == scheme
        assert r.resample_size == (n // 2 if scheme == "half-sampling" else n)
        widths.append(r.ci_high - r.ci_low)
    assert widths[1] < widths[0]


def test_half_sampling_matches_bootstrap_width_for_a_smooth_measure():
    X, Y = _views(9, n=400, noise=2.0)
    boot = bootstrap_ci(_bootstrapped("cka-linear"), X, Y, n_resamples=200, random_state=0)
    half = bootstrap_ci("cka-linear", X, Y, n_resamples=200, random_state=0)
    assert half.resample_size == 200
    ratio = (half.ci_high - half.ci_low) / (boot.ci_high - boot.ci_low)
    assert 0.7 < ratio < 1.4


def test_neighbourhood_measures_are_half_sampled_around_the_full_value():
    X, Y = _views(6, n=200)
    r = bootstrap_ci("mutual-knn", X, Y, n_resamples=100, random_state=0)
    assert r.resampling == "half-sampling"
    assert r.resample_size == 100
    assert r.ci_low < r.value < r.ci_high
    # an ordinary bootstrap pairs each repeated row with its copy in both views and inflates
    # the overlap: its resamples centre above the whole half-sampled interval
    naive = Measure("naive", "similarity", 2, get("mutual-knn").func, "", {"k": 10})
    inflated = bootstrap_ci(naive, X, Y, n_resamples=100, random_state=0)
    assert inflated.resamples.mean() > r.ci_high


def test_bootstrap_interval_is_corrected_for_the_bias_of_repeated_rows():
    # few samples, many features: resamples with repeated rows raise CKA well above the
    # full-sample value, and an uncorrected percentile interval would miss it
    rng = np.random.default_rng(11)
    for seed in range(5):
        X = rng.standard_normal((15, 40))
        Y = X[:, :30] + 2.0 * rng.standard_normal((15, 30))
        r = bootstrap_ci(_bootstrapped("cka-linear"), X, Y, n_resamples=100, random_state=seed)
        bias = r.resamples.mean() - r.value
        assert bias > 0.03
        edges = np.quantile(r.resamples, [0.025, 0.975], method="weibull")
        assert edges[0] > r.value - bias / 2  # the raw interval's edge
        assert r.ci_low < r.value < r.ci_high
        np.testing.assert_allclose([r.ci_low, r.ci_high], edges - bias)


def test_bootstrap_one_view_dimension():
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((400, 4)) @ rng.standard_normal((4, 20))
    r = bootstrap_ci("id-twonn", Z, n_resamples=20, random_state=0)
    assert r.ci_low < r.ci_high
    assert 3.0 < r.value < 5.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda X, Y: permutation_test("id-twonn", X, Y), ValueError, r"'id-twonn' is a dimension"),
        (
            lambda X, Y: permutation_test("cka-linear", X, Y, n_permutations=0),
            ValueError,
            r"n_permutations must be an integer >= 1",
        ),
        (lambda X, Y: permutation_test("cka-linear", X, Y[:-1]), ValueError, r"Y.shape=\(19, 3\)"),
        (lambda X, Y: permutation_test(42, X, Y), TypeError, r"measure must be a registered name"),
        (lambda X, Y: permutation_test("ckaa", X, Y), ValueError, r"unknown measure 'ckaa'"),
        (
            lambda X, Y: bootstrap_ci("cka-linear", X),
            ValueError,
            r"'cka-linear' takes 2 view\(s\); got 1 \(Y is None\)",
        ),
        (lambda X, Y: bootstrap_ci("id-pr", X, Y), ValueError, r"takes 1 view\(s\); got 2"),
        (
            lambda X, Y: bootstrap_ci("cka-linear", X, Y, confidence=95),
            ValueError,
            r"confidence must be a float in \(0, 1\)",
        ),
        (
            lambda X, Y: bootstrap_ci("cka-linear", X, Y, n_resamples=1),
            ValueError,
            r"n_resamples must be an integer >= 2",
        ),
    ],
)
def test_bad_inputs(call, error, match):
    X, Y = _views(8, n=20)
    Y = Y[:, :3]
    with pytest.raises(error, match=match):
        call(X, Y)
