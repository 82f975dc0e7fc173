"""Typed results: rebuilt from a table (and its CSV) they give back exactly the same rows."""

import math
from dataclasses import replace

import numpy as np
import pytest

from geomalign.analysis import (
    Calibration,
    Estimate,
    IDProfile,
    LayerCurve,
    LayerMap,
    ResultsTable,
    abstraction_phase,
    cross_modal_curve,
    id_profile,
    layer_map,
    tuning_change_curve,
)
from geomalign.analysis.results import PHASE_ALPHA


@pytest.fixture(scope="module")
def table(planted_store):
    cal = Calibration(n_permutations=5, n_resamples=5)
    table = ResultsTable()
    for ckpt in ("base", "tuned"):
        table.extend(cross_modal_curve(planted_store, ckpt, measures="cka-linear", calibration=cal))
        table.extend(
            id_profile(planted_store, (ckpt, "image", "mean"), measure="id-twonn", calibration=cal)
        )
    table.extend(
        layer_map(
            planted_store,
            ("base", "image", "mean"),
            ("base", "text", "mean"),
            layers_a=[1, 2],
            layers_b=[2, 3, 4],
            calibration=cal,
        )
    )
    table.extend(
        tuning_change_curve(
            planted_store, base="base", tuned="tuned", measures="cka-linear", calibration=cal
        )
    )
    table.extend(abstraction_phase(table))
    return table


def _rows(table, analyses):
    return ResultsTable(r for r in table if r.analysis in analyses)


@pytest.mark.parametrize("through_csv", [False, True])
def test_every_type_gives_back_its_rows_exactly(table, tmp_path, through_csv):
    source = ResultsTable.from_csv(table.to_csv(tmp_path / "r.csv")) if through_csv else table
    curves = LayerCurve.from_table(source)
    assert {c.analysis for c in curves} == {"cross-modal", "tuning-change", "id-profile"}
    rebuilt = ResultsTable()
    for curve in curves:
        rebuilt.extend(curve.to_table())
    assert rebuilt == _rows(table, {"cross-modal", "tuning-change", "id-profile"})
    (found,) = LayerMap.from_table(source)
    assert found.to_table() == _rows(table, {"layer-map", "best-match"})
    assert found.values.shape == (2, 3)
    assert [m.layer for m in found.best] == [1, 2]
    assert all(0.0 <= m.stability <= 1.0 for m in found.best)
    phases = ResultsTable()
    for profile in IDProfile.from_table(source):
        phases.extend(profile.phase_table())
    assert phases == _rows(table, {"abstraction-phase"})


def test_typed_fields_match_the_rows(table):
    curve = next(c for c in LayerCurve.from_table(table, analysis="cross-modal"))
    rows = table.select(analysis="cross-modal", checkpoint=curve.checkpoint)
    np.testing.assert_array_equal(curve.values, rows.column("value"))
    assert curve.at(rows[2].layer).p_value == rows[2].p_value
    (found,) = LayerMap.from_table(table)
    best = table.select(analysis="best-match", statistic="value")
    assert [(m.layer_b, m.estimate.p_value) for m in found.best] == [
        (r.layer_b, r.p_value) for r in best
    ]
    for profile in IDProfile.from_table(table):
        if profile.phase is not None:
            peak = profile.profile.at(profile.phase.peak_layer)
            base = profile.profile.at(profile.base_layer)
            assert base.value == pytest.approx(profile.phase.peak_value - profile.phase.prominence)
            if peak.p_value is not None:  # the phase test decides
                assert profile.may_be_noise == (peak.p_value > PHASE_ALPHA)
            else:
                overlap = peak.ci_low is not None and peak.ci_low <= base.ci_high
                assert profile.may_be_noise == overlap
            assert ("may be noise" in profile.phase_notes) == profile.may_be_noise


def _place(row):
    names = ("analysis", "measure", "checkpoint", "view", "layer", "statistic", "checkpoint_b")
    return {name: getattr(row, name) for name in (*names, "view_b", "layer_b", "kind")}


def test_undefined_reason_and_to_pandas(table, tmp_path):
    row = table[0]
    notes = "undefined (NaN): all 8 rows of X are identical; seed=0"
    why = "all 8 rows of X are identical"
    undefined = Estimate.of(replace(row, value=math.nan, notes=notes, undefined_reason=why))
    assert not undefined.defined
    assert undefined.undefined_reason == why
    assert Estimate.of(row).undefined_reason == ""
    # the reason is read from its column, never from the notes
    assert Estimate.of(replace(row, value=math.nan, notes=notes)).undefined_reason == ""
    measured = Estimate(math.nan, notes=notes, undefined_reason=why)
    assert Estimate.of(measured.row(**_place(row))) == measured
    assert (
        ResultsTable.from_csv(
            ResultsTable([measured.row(**_place(row))]).to_csv(tmp_path / "r.csv")
        )[0].undefined_reason
        == why
    )
    pandas = pytest.importorskip("pandas")
    frame = table.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns)[:5] == ["analysis", "measure", "checkpoint", "view", "layer"]
    assert len(frame) == len(table)
    assert frame["layer"].dtype == "Int64"
    assert frame["value"].iloc[0] == row.value


def test_evaluate_fills_the_undefined_reason_its_notes_state():
    from geomalign import metrics
    from geomalign.analysis.evaluation import evaluate

    X = np.ones((8, 3))
    Y = np.random.default_rng(0).normal(size=(8, 3))
    point = evaluate(metrics.resolve("cka-linear"), X, Y, Calibration(), names=("A", "B"))
    assert not point.defined
    assert point.undefined_reason.startswith("all 8 rows of A are identical")
    assert point.notes.startswith(f"undefined (NaN): {point.undefined_reason}")
