import numpy as np
import pytest

from geomalign.analysis import Calibration, layer_map, map_matrix


def test_best_match_finds_planted_routes_with_max_null(planted_store):
    cal = Calibration(n_permutations=30, n_resamples=20)
    table = layer_map(
        planted_store,
        ("base", "image", "mean"),
        ("base", "text", "mean"),
        measure="cka-linear",
        calibration=cal,
    )
    layers_a, layers_b, values = map_matrix(
        table,
        measure="cka-linear",
        checkpoint="base",
        view="image/mean",
        checkpoint_b="base",
        view_b="text/mean",
    )
    assert layers_a == layers_b == list(range(6))
    assert values.shape == (6, 6)
    # planted: text 2 = rotated image 2, text 4 = rotated image 1; everything else independent.
    assert values[2, 2] == pytest.approx(1.0, abs=1e-6)
    assert values[1, 4] == pytest.approx(1.0, abs=1e-6)
    mask = np.ones_like(values, dtype=bool)
    mask[2, 2] = mask[1, 4] = False
    assert values[mask].max() < 0.5
    best = {r.layer: r for r in table.select(analysis="best-match", statistic="value")}
    stability = {r.layer: r.value for r in table.select(statistic="stability")}
    assert best[2].layer_b == 2
    assert best[1].layer_b == 4
    assert stability[2] == stability[1] == 1.0  # an exact rotation wins on every half-sample
    assert min(stability[layer] for layer in (0, 3, 4, 5)) < 1.0
    assert best[2].p_value == best[1].p_value == pytest.approx(1 / 31)
    assert {r.n_null_draws for r in best.values()} == {30}
    assert {r.n_null_draws for r in table.select(statistic="stability")} == {None}
    # The null of a maximum over 6 layers sits above a single cell's null, so layers without a
    # planted route are not called significant just because their best of 6 is picked.
    unplanted = [best[layer].p_value for layer in (0, 3, 4, 5)]
    assert np.median(unplanted) > 0.05
    for layer in (0, 3, 4, 5):
        assert best[layer].null_mean == pytest.approx(best[layer].value, abs=0.15)


def test_distance_map_picks_the_smallest_distance(planted_store):
    view = ("base", "image", "mean")
    table = layer_map(
        planted_store,
        view,
        view,
        measure="information-imbalance",
        layers_a=[1, 2, 3],
        layers_b=[1, 2, 3],
    )
    best = {r.layer: r.layer_b for r in table.select(analysis="best-match", statistic="value")}
    assert best == {1: 1, 2: 2, 3: 3}
    assert table[0].kind == "distance"
    assert all(r.p_value is None for r in table)  # no permutations asked for


def test_map_matrix_error_lists_available_maps(planted_store):
    table = layer_map(
        planted_store,
        ("base", "image", "mean"),
        ("base", "text", "mean"),
        layers_a=[0],
        layers_b=[0, 1],
    )
    with pytest.raises(ValueError, match=r"no layer-map rows for cka-linear between tuned"):
        map_matrix(
            table,
            measure="cka-linear",
            checkpoint="tuned",
            view="image/mean",
            checkpoint_b="tuned",
            view_b="text/mean",
        )
    with pytest.raises(ValueError, match=r"layers_b: view base:text/mean has layers"):
        layer_map(planted_store, ("base", "image", "mean"), ("base", "text", "mean"), layers_b=[9])
