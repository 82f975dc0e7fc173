"""The linear CKA map under permutations, from per-layer pieces, equals fresh maps."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign.analysis import Calibration, layer_map
from geomalign.analysis import _map_null as map_null_module
from geomalign.analysis import layer_maps as layer_maps_module
from geomalign.analysis._map_null import linear_cka_on_resamples, linear_cka_under_permutations
from geomalign.metrics import cka_matrix


@pytest.mark.parametrize(("n", "widths"), [(30, (40, 50, 45)), (200, (3, 5, 4))])
def test_equals_fresh_maps_in_both_forms(n, widths):
    # n = 30 below the widths takes the Gram form, n = 200 above them the feature form
    rng = np.random.default_rng(0)
    Xs = [rng.normal(size=(n, w)) for w in widths]
    Ys = [X @ rng.normal(size=(X.shape[1], 6)) + rng.normal(size=(n, 6)) for X in Xs[:2]]
    perms = [np.arange(n), rng.permutation(n), rng.permutation(n)]
    fast = linear_cka_under_permutations(Xs, Ys, perms)
    for p, perm in enumerate(perms):
        np.testing.assert_allclose(fast[p], cka_matrix(Xs, [Y[perm] for Y in Ys]), rtol=1e-5)


def test_layer_map_null_unchanged(planted_store, monkeypatch):
    calibration = Calibration(n_permutations=8, n_resamples=3)
    views = ("base", "image", "mean"), ("base", "text", "mean")
    fast = layer_map(planted_store, *views, calibration=calibration)
    fresh = layer_maps_module.linear_cka_under_permutations

    def reference(Xs, Ys, perms, device=None):
        assert fresh(Xs, Ys, perms).shape == (len(perms), len(Xs), len(Ys))
        return np.array([cka_matrix(Xs, [Y[perm] for Y in Ys]) for perm in perms])

    monkeypatch.setattr(layer_maps_module, "linear_cka_under_permutations", reference)
    slow = layer_map(planted_store, *views, calibration=calibration)
    for a, b in zip(fast, slow, strict=True):
        assert (a.layer, a.layer_b, a.statistic, a.p_value) == (
            b.layer,
            b.layer_b,
            b.statistic,
            b.p_value,
        )
        assert a.value == pytest.approx(b.value, rel=1e-6)
        assert (a.null_mean is None) == (b.null_mean is None)
        if a.null_mean is not None:
            assert a.null_mean == pytest.approx(b.null_mean, rel=1e-6)


def test_half_sample_maps_from_gathered_grams_equal_fresh_maps():
    rng = np.random.default_rng(1)
    Xs = [rng.normal(size=(30, w)) for w in (40, 50)]
    Ys = [X @ rng.normal(size=(X.shape[1], 45)) + rng.normal(size=(30, 45)) for X in Xs]
    halves = [np.sort(rng.choice(30, 15, replace=False)) for _ in range(3)]
    fast = linear_cka_on_resamples(Xs, Ys, halves)
    for b, rows in enumerate(halves):
        np.testing.assert_allclose(
            fast[b], cka_matrix([X[rows] for X in Xs], [Y[rows] for Y in Ys]), rtol=1e-6
        )
    # wide stacks of few, narrow layers: the feature form is cheaper, and the caller maps afresh
    assert (
        linear_cka_on_resamples([rng.normal(size=(200, 3))], [rng.normal(size=(200, 4))], halves)
        is None
    )


def test_layer_map_stability_unchanged(planted_store, monkeypatch):
    calibration = Calibration(n_permutations=0, n_resamples=6)
    views = ("base", "image", "mean"), ("base", "text", "mean")
    fast = layer_map(planted_store, *views, calibration=calibration)
    monkeypatch.setattr(layer_maps_module, "linear_cka_on_resamples", lambda *a, **k: None)
    slow = layer_map(planted_store, *views, calibration=calibration)
    assert [(r.layer, r.layer_b, r.statistic, r.value) for r in fast] == [
        (r.layer, r.layer_b, r.statistic, r.value) for r in slow
    ]
    assert any(r.statistic == "stability" for r in fast)


def test_permutations_and_resamples_gathered_in_chunks_equal_one_gather(monkeypatch):
    rng = np.random.default_rng(2)
    Xs = [rng.normal(size=(30, w)) for w in (40, 50)]
    Ys = [X @ rng.normal(size=(X.shape[1], 45)) + rng.normal(size=(30, 45)) for X in Xs]
    perms = [rng.permutation(30) for _ in range(5)]
    halves = [np.sort(rng.choice(30, 15, replace=False)) for _ in range(5)]
    whole = linear_cka_under_permutations(Xs, Ys, perms), linear_cka_on_resamples(Xs, Ys, halves)
    monkeypatch.setattr(map_null_module, "_GATHER_BYTES", 8 * 4 * 30 * 30 * 2)  # 2 at a time
    chunked = linear_cka_under_permutations(Xs, Ys, perms), linear_cka_on_resamples(Xs, Ys, halves)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
