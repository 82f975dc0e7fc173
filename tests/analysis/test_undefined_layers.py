"""Layers on which a measure is undefined (all rows identical, too few distinct rows) are NaN."""

import logging

import numpy as np
import pytest

from geomalign.analysis import (
    Calibration,
    LayerMap,
    analyze_store,
    compare_views,
    detect_abstraction_phase,
    id_profile,
    layer_map,
    summarize,
    tuning_change_curve,
)
from geomalign.plotting import plot_results
from geomalign.store import ActivationStore

N = 80
DIM = 12
LAYERS = [0, 1, 2, 3, 4]
# intrinsic dimension of layers 1..4 (layer 0 is constant): a peak at layer 3
DIMS = [None, 2, 5, 9, 3]


def _layers(rng: np.random.Generator) -> np.ndarray:
    """Layer 0 holds one row repeated (the same final token's embedding for every sample)."""
    data = np.empty((len(LAYERS), N, DIM), dtype=np.float32)
    data[0] = rng.normal(size=DIM)
    for layer, d in zip(LAYERS[1:], DIMS[1:], strict=True):
        basis = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0][:d]
        data[layer] = rng.normal(size=(N, d)) @ basis
    return data


@pytest.fixture(scope="module")
def last_token_store(tmp_path_factory):
    """(base, tuned) x (image, text) x last, layers 0..4 with a constant layer 0.

    The tuned image view's layer 1 has only 10 distinct rows, each repeated 8 times.
    """
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("last") / "last.h5"
    ids = [f"s{i:03d}" for i in range(N)]
    with ActivationStore.create(path, ids, captions=[f"caption {i}" for i in ids]) as store:
        for ckpt in ("base", "tuned"):
            store.add_checkpoint(ckpt, model=f"m/{ckpt}", n_layers=4, hidden_size=DIM)
            for modality in ("image", "text"):
                data = _layers(rng)
                if (ckpt, modality) == ("tuned", "image"):
                    data[1] = np.repeat(data[1, :10], 8, axis=0)
                store.create_view(ckpt, modality, "last", layers=LAYERS, dim=DIM)
                store.write(ckpt, modality, "last", np.arange(N), data)
    return path


def test_constant_layer_gives_nan_id_and_the_rest_of_the_profile(last_token_store, caplog):
    cal = Calibration(n_resamples=4)
    with caplog.at_level(logging.WARNING, logger="geomalign.analysis"):
        table = id_profile(last_token_store, ("base", "image", "last"), calibration=cal)
    rows = {r.layer: r for r in table}
    assert np.isnan(rows[0].value)
    assert rows[0].ci_low is None
    assert f"all {N} rows of base:image/last layer 0 are identical" in rows[0].notes
    assert all(np.isfinite(rows[layer].value) for layer in LAYERS[1:])
    assert [r.layer for r in table] == LAYERS
    assert "base:image/last, id-gride: layers [0] undefined" in caplog.text


def test_too_few_distinct_rows_give_nan_id(last_token_store):
    table = id_profile(last_token_store, ("tuned", "image", "last"), layers=[1, 2])
    one, two = table
    assert np.isnan(one.value)
    assert "needs at least 33 distinct samples; X has 80 rows" in one.notes
    assert "leaving 10." in one.notes
    assert np.isfinite(two.value)


def test_other_errors_still_raise(tmp_path):
    path = tmp_path / "small.h5"
    with ActivationStore.create(path, [f"s{i}" for i in range(20)]) as store:
        store.add_checkpoint("base", model="m")
        store.create_view("base", "text", "last", layers=[0], dim=4)
        X = np.random.default_rng(0).normal(size=(1, 20, 4))
        store.write("base", "text", "last", np.arange(20), X)
    # 20 distinct rows are too few for GRIDE's 32 neighbours: a setting error, not a layer's
    with pytest.raises(ValueError, match="needs at least 33 samples"):
        id_profile(path, ("base", "text", "last"))


def test_abstraction_phase_ignores_nan_layers():
    phase = detect_abstraction_phase([0, 1, 2, 3, 4, 5], [np.nan, 2.0, 4.0, 10.0, 4.0, 2.0])
    assert phase.peak_layer == 3
    assert phase.onset == pytest.approx(2 + 1 / 3)
    # a gap inside the profile: interpolation runs on the real layer numbers of the others
    phase = detect_abstraction_phase([0, 1, 2, 3, 4], [2.0, np.nan, 10.0, 6.0, 2.0])
    assert phase.peak_layer == 2
    assert phase.onset == pytest.approx(1.0)
    assert detect_abstraction_phase([0, 1, 2], [np.nan, np.nan, np.nan]) is None


def test_curves_give_nan_where_a_view_is_constant(last_token_store):
    cal = Calibration(n_permutations=5, n_resamples=4, max_samples=40)  # streamed CKA too
    table = compare_views(
        last_token_store,
        ("base", "image", "last"),
        ("tuned", "image", "last"),
        measures=["cka-linear", "ot-sliced"],
        layers=[0, 2],
        calibration=cal,
    )
    cka = {r.layer: r for r in table.select(measure="cka-linear")}
    assert np.isnan(cka[0].value)
    assert cka[0].p_value is None
    assert "undefined (NaN): all 40 rows of base:image/last layer 0 are identical" in cka[0].notes
    assert cka[0].undefined_reason.startswith(
        "all 40 rows of base:image/last layer 0 are identical"
    )
    assert cka[2].undefined_reason == ""
    assert np.isfinite(cka[2].value)
    # optimal transport to a point mass is defined: a number, as before
    assert all(np.isfinite(r.value) for r in table.select(measure="ot-sliced"))

    change = tuning_change_curve(
        last_token_store, base="base", tuned="tuned", measures="cka-linear", calibration=cal
    )
    by_layer = {r.layer: r for r in change}
    assert np.isnan(by_layer[0].value)
    assert "identical" in by_layer[0].notes
    assert all(np.isfinite(by_layer[layer].value) for layer in LAYERS[1:])


def test_layer_map_skips_constant_layers(last_token_store):
    table = layer_map(
        last_token_store,
        ("base", "image", "last"),
        ("base", "text", "last"),
        calibration=Calibration(n_permutations=5, n_resamples=3),
    )
    cells = table.select(analysis="layer-map")
    for r in cells:
        assert np.isnan(r.value) == (r.layer == 0 or r.layer_b == 0)
        assert bool(r.undefined_reason) == (r.layer == 0 or r.layer_b == 0)
        for why in filter(None, r.undefined_reason.split("; ")):  # one per undefined view
            assert f"undefined (NaN): {why}" in r.notes
    best = {r.layer: r for r in table.select(analysis="best-match", statistic="value")}
    assert np.isnan(best[0].value)
    assert "identical" in best[0].undefined_reason
    assert LayerMap.from_table(table)[0].to_table() == table
    assert best[0].layer_b is None
    assert all(best[layer].layer_b != 0 and 0 < best[layer].p_value <= 1 for layer in LAYERS[1:])


def test_whole_store_analysis_summary_and_plots(last_token_store, tmp_path):
    cal = Calibration(n_permutations=5, n_resamples=4)
    table = analyze_store(
        last_token_store, measures=["cka-linear", "mutual-knn", "id-gride"], calibration=cal
    )
    phases = table.select(analysis="abstraction-phase", statistic="peak_layer")
    assert {r.checkpoint: r.value for r in phases if r.view == "text/last"} == {
        "base": 3.0,
        "tuned": 3.0,
    }
    assert all("undefined at layers [0]" in r.notes for r in phases if r.view == "text/last")
    text = summarize(table)
    assert "Undefined values (NaN)" in text
    assert "id-profile id-gride base image/last: layers 0 (all 80 rows of" in text
    paths = plot_results(table, tmp_path / "figures")
    assert len(paths) == 3 * 2 + 2 + 2  # curves x measures, maps, ID profiles


def test_ci_left_out_when_resamples_have_too_few_distinct_rows(tmp_path):
    rng = np.random.default_rng(1)
    X = np.repeat(rng.normal(size=(40, 6)), 2, axis=0)  # 40 distinct rows, each twice
    path = tmp_path / "pairs.h5"
    with ActivationStore.create(path, [f"s{i}" for i in range(80)]) as store:
        store.add_checkpoint("base", model="m")
        store.create_view("base", "text", "mean", layers=[0], dim=6)
        store.write("base", "text", "mean", np.arange(80), X[None])
    # GRIDE needs 33 distinct rows: the 40 of the full data, not a half-sample's
    (row,) = id_profile(path, ("base", "text", "mean"), calibration=Calibration(n_resamples=5))
    assert np.isfinite(row.value)
    assert row.ci_low is None
    assert "no CI: undefined on a resample (GRIDE with n1=16" in row.notes
    assert "needs at least 33 distinct samples" in row.notes
