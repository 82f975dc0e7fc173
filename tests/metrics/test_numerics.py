"""Measures at extreme magnitudes and at the smallest sample counts.

Every registered measure is either scale-invariant (the same value for ``c X, c Y``) or, for the
Wasserstein distances, scale-equivariant (``c`` times the value); the property is checked over
magnitudes from 1e-30 to 1e30 and at the extremes where float32 products overflow or underflow.
Below the smallest sample count at which a measure depends on the data, it raises
UndefinedMeasureError instead of returning a constant.
"""

import contextlib
import signal

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geomalign import metrics
from geomalign.metrics import UndefinedMeasureError

N, D = 40, 6
# Distances in the units of the rows: W_p(cX, cY) = c W_p(X, Y).
EQUIVARIANT = {"ot-emd", "ot-sinkhorn", "ot-sliced"}
EXTREMES = (1e-30, 1e-25, 1e19, 1e20, 1e30)  # the magnitudes reported to fail
FLOAT64_EXTREMES = (1e38, 1e100, 1e-100)  # beyond float32's range: float64 input only


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    Y = X @ rng.standard_normal((D, D)) + 0.5 * rng.standard_normal((N, D))
    return X, Y


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging (a loop without an exit once never returned at 1e20)."""

    def fail(*_):
        raise TimeoutError(f"no result within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _value(name: str, X: np.ndarray, Y: np.ndarray) -> float:
    measure = metrics.get(name)
    with _deadline(60):
        return measure(X) if measure.n_views == 1 else measure(X, Y)


_REFERENCE = {}


def _reference(name: str) -> float:
    if name not in _REFERENCE:
        _REFERENCE[name] = _value(name, *_pair())
    return _REFERENCE[name]


def _check_scaled(name: str, scale: float, dtype: type) -> None:
    X, Y = _pair()
    value = _value(name, (scale * X).astype(dtype), (scale * Y).astype(dtype))
    expected = _reference(name) * (scale if name in EQUIVARIANT else 1.0)
    rel = 1e-9 if dtype is np.float64 else 2e-4
    assert value == pytest.approx(expected, rel=rel, abs=1e-12 * abs(expected)), (name, scale)


@pytest.mark.parametrize("name", metrics.available())
@settings(max_examples=4, deadline=None)
@given(exponent=st.integers(-30, 30))
@example(exponent=0)
def test_scale_invariance_float64(name, exponent):
    _check_scaled(name, 10.0**exponent, np.float64)


@pytest.mark.parametrize("name", metrics.available())
@pytest.mark.parametrize("scale", EXTREMES + FLOAT64_EXTREMES)
def test_scale_invariance_at_extremes(name, scale):
    _check_scaled(name, scale, np.float64)


@pytest.mark.parametrize("name", metrics.available())
@pytest.mark.parametrize("scale", EXTREMES)
def test_scale_invariance_float32(name, scale):
    # float32 rows of 1e-30 or 1e30: squares and products would leave float32's range
    _check_scaled(name, scale, np.float32)


def test_unrelated_views_stay_unrelated_at_1e20():
    # k-NN lists from float32 products of 1e20 rows once matched for any pair of views
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((200, 8)), rng.standard_normal((200, 8))
    for func in (metrics.mutual_knn, metrics.cknna):
        for scale in (1e19, 1e20):
            assert func(scale * X, scale * Y) == pytest.approx(func(X, Y), abs=1e-9)
            assert func(scale * X, scale * Y) < 0.2


def test_absolute_bandwidths_follow_the_scale():
    X, Y = _pair()
    expected = metrics.cka(X, Y, kernel="rbf", sigma=3.0)
    for scale in (1e-30, 1e20, 1e100):
        got = metrics.cka(scale * X, scale * Y, kernel="rbf", sigma=3.0 * scale)
        assert got == pytest.approx(expected, rel=1e-9)
    expected = metrics.ot_distance(X, Y, method="sinkhorn", epsilon=2.0, sinkhorn="entropic")
    for scale in (1e-30, 1e20):
        got = metrics.ot_distance(
            scale * X, scale * Y, method="sinkhorn", epsilon=2.0 * scale**2, sinkhorn="entropic"
        )
        assert got == pytest.approx(expected * scale, rel=1e-6)


def test_unnormalised_gromov_wasserstein_is_equivariant():
    X, Y = _pair()
    expected = metrics.gromov_wasserstein(X, Y[:, :3], normalisation="none")
    for scale in (1e-30, 1e25, 1e100):
        got = metrics.gromov_wasserstein(scale * X, scale * Y[:, :3], normalisation="none")
        assert got == pytest.approx(expected * scale, rel=1e-6)


def test_streaming_cka_at_extremes():
    X, Y = _pair()
    expected = metrics.cka(X, Y)
    for scale in (1e-30, 1e38, 1e100):
        acc = metrics.StreamingLinearCKA()
        acc.update(scale * X[:25], scale * Y[:25]).update(scale * X[25:], scale * Y[25:])
        assert acc.value() == pytest.approx(expected, rel=1e-9)


def test_duplicate_search_always_ends():
    X, _ = _pair()
    X = np.vstack([X, X[:5]])  # 5 exact duplicates, dropped in one pass
    with _deadline(60), pytest.warns(UserWarning, match="5 of 45 rows"):
        assert metrics.intrinsic_dimension(1e20 * X, method="twonn").n_used == N


# The smallest n at which each measure depends on the data (see each function's docstring),
# as (call, n_min): one sample fewer must raise UndefinedMeasureError.
SMALLEST_N = {
    "cka": (lambda X, Y: metrics.cka(X, Y), 3),
    "cka-rbf": (lambda X, Y: metrics.cka(X, Y, kernel="rbf"), 3),
    "cka-debiased": (lambda X, Y: metrics.cka(X, Y, debiased=True), 4),
    "svcca": (lambda X, Y: metrics.svcca(X, Y, n_components=1), 3),
    "distance-correlation": (metrics.distance_correlation, 3),
    "distance-correlation-debiased": (
        lambda X, Y: metrics.distance_correlation(X, Y, squared=True, debiased=True),
        4,
    ),
    "mutual-knn": (lambda X, Y: metrics.mutual_knn(X, Y, k=1), 3),
    "cycle-knn": (lambda X, Y: metrics.cycle_knn(X, Y, k=1), 3),
    "cknna": (lambda X, Y: metrics.cknna(X, Y, k=2), 4),
    "information-imbalance": (metrics.information_imbalance, 3),
    "matching-accuracy-gw": (
        lambda X, Y: metrics.ot_matching_accuracy(X, Y, method="gromov-wasserstein"),
        3,
    ),
    "gromov-wasserstein": (metrics.gromov_wasserstein, 3),
    "participation-ratio": (lambda X, Y: metrics.intrinsic_dimension(X, method="pr").dimension, 3),
}


@pytest.mark.parametrize("name", sorted(SMALLEST_N))
def test_undefined_below_the_smallest_n(name):
    func, n_min = SMALLEST_N[name]
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((n_min, 4)), rng.standard_normal((n_min, 4))
    assert np.isfinite(float(func(X, Y)))
    with pytest.raises(UndefinedMeasureError, match=f"undefined on {n_min - 1} sample"):
        func(X[: n_min - 1], Y[: n_min - 1])


@pytest.mark.parametrize(
    "func",
    [
        lambda X, Y: metrics.cka(X, Y),
        lambda X, Y: metrics.cka(X, Y, kernel="rbf"),
        metrics.svcca,
        metrics.distance_correlation,
    ],
)
def test_two_samples_no_longer_give_one(func):
    rng = np.random.default_rng(3)
    with pytest.raises(UndefinedMeasureError, match="undefined on 2 samples"):
        func(rng.standard_normal((2, 5)), rng.standard_normal((2, 5)))


def test_svcca_refuses_directions_that_span_every_sample():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((6, 10)), rng.standard_normal((6, 10))
    with pytest.raises(UndefinedMeasureError, match="5 directions span all 5 dimensions"):
        metrics.svcca(X, Y)  # 99% of the variance of 6 rows needs all 5 centred directions
    assert 0.0 <= metrics.svcca(X, Y, n_components=2) < 1.0


def test_neighbour_measures_refuse_every_sample_as_neighbour():
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    for func in (metrics.mutual_knn, metrics.cycle_knn, metrics.information_imbalance):
        with pytest.raises(ValueError, match=r"needs k <= n_samples - 2; got k=5"):
            func(X, Y, k=5)
