"""A user's measure: one function, one register call, and every analysis accepts it."""

import numpy as np
import pytest

from geomalign import metrics, stats
from geomalign.analysis import Calibration, analyze_store, cross_modal_curve, layer_map


def mean_cosine(X, Y):
    """Mean cosine similarity of paired rows (same width)."""
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    Y = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    return float(np.mean(np.sum(X * Y, axis=1)))


MEAN_COSINE = metrics.Measure(
    "test-mean-cosine", "similarity", 2, mean_cosine, "Mean cosine of paired rows."
)


def test_register_a_measure_and_use_it_by_name_and_as_object(planted_store):
    registered = metrics.register(MEAN_COSINE, overwrite=True)
    assert metrics.get("test-mean-cosine") is registered
    assert "test-mean-cosine" in metrics.available("similarity")
    with pytest.raises(ValueError, match="already registered"):
        metrics.register(MEAN_COSINE)
    cal = Calibration(n_permutations=9, n_resamples=4)
    by_name = cross_modal_curve(planted_store, "base", measures="test-mean-cosine", calibration=cal)
    unregistered = metrics.Measure("other-cosine", "similarity", 2, mean_cosine, "Same.")
    by_object = cross_modal_curve(planted_store, "base", measures=unregistered, calibration=cal)
    np.testing.assert_array_equal(by_name.column("value"), by_object.column("value"))
    np.testing.assert_array_equal(by_name.column("p_value"), by_object.column("p_value"))
    assert set(by_object.unique("measure")) == {"other-cosine"}
    maps = layer_map(
        planted_store, ("base", "image", "mean"), ("base", "text", "mean"), measure=unregistered
    )
    assert len(maps.select(analysis="best-match"))
    table = analyze_store(planted_store, measures=[unregistered, "id-twonn"])
    assert {"other-cosine", "id-twonn"} <= set(table.unique("measure"))
    X = np.random.default_rng(0).normal(size=(30, 4))
    assert (
        stats.permutation_test(unregistered, X, X, n_permutations=9, random_state=0).p_value == 0.1
    )


def test_capabilities_are_fields_of_the_measure():
    linear = metrics.get("cka-linear")
    assert linear.streams_exactly
    assert linear.has_permutation_shortcut
    assert linear.matrix is not None
    assert not metrics.get("mutual-knn").streams_exactly
    assert metrics.get("mutual-knn").has_permutation_shortcut
    assert not MEAN_COSINE.streams_exactly
    assert not MEAN_COSINE.has_permutation_shortcut
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(50, 3)), rng.normal(size=(50, 4))
    acc = linear.stream()
    for block in range(0, 50, 20):
        acc.update(X[block : block + 20], Y[block : block + 20])
    assert acc.value() == pytest.approx(linear(X, Y), abs=1e-10)
    np.testing.assert_allclose(linear.matrix([X], [Y, X]), [[linear(X, Y), 1.0]], atol=1e-10)
    with pytest.raises(TypeError, match="register\\(\\) takes a Measure"):
        metrics.register("cka-linear")
