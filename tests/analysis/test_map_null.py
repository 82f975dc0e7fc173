"""The linear CKA map under permutations, from per-layer pieces, equals fresh maps."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign.analysis import Calibration, layer_map
from geomalign.analysis import layer_maps as layer_maps_module
from geomalign.analysis._map_null import linear_cka_under_permutations
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

    def reference(Xs, Ys, perms):
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
