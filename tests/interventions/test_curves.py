"""Effect curves: endpoints, reference rows, summary statistics, statistics helpers."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign.analysis import EffectCurve
from geomalign.analysis.table import ResultsTable
from geomalign.interventions import transplant_curve, visual_token_curve
from geomalign.interventions._curve_rows import Curve, CurveCalibration
from geomalign.interventions.scoring import score_items
from geomalign.stats import Grouping, cluster_bootstrap, cluster_means, sign_flip_p_value

from .conftest import N_LAYERS, make_items, tiny_llava

FAST = {"n_resamples": 200, "n_permutations": 200}


def _rows(table, **criteria):
    return list(table.select(**criteria))


def test_cumulative_transplant_runs_from_base_to_tuned(tmp_path):
    base, tuned = tiny_llava(1), tiny_llava(2)
    task = make_items(8)
    base_scores = score_items(base, task)
    tuned_scores = score_items(tuned, task)
    curve = transplant_curve(base, tuned, task, **FAST)
    table = curve.to_table()
    reference = _rows(table, statistic="reference")
    assert [r.checkpoint for r in reference] == ["base", "tuned"]
    assert reference[0].value == pytest.approx(base_scores.mean())
    assert reference[1].value == pytest.approx(tuned_scores.mean())
    windows = _rows(table, statistic="value")
    assert len(windows) == N_LAYERS + 1
    assert (windows[0].layer, windows[0].layer_b) == (None, None)
    assert (windows[-1].layer, windows[-1].layer_b) == (1, N_LAYERS)
    assert windows[0].value == reference[0].value
    assert windows[0].p_value == 1.0
    assert windows[-1].value == reference[1].value
    assert all(r.null_mean == reference[0].value for r in windows)
    assert all(r.ci_low <= r.value <= r.ci_high for r in windows)
    assert {r.statistic for r in table} == {
        "reference",
        "value",
        "effect",
        "peak_layer",
        "middle_minus_early",
        "middle_minus_late",
    }
    effects = _rows(table, statistic="effect")
    for score, effect in zip(windows, effects, strict=True):
        assert effect.value == pytest.approx(score.value - score.null_mean)
        assert (effect.layer, effect.layer_b, effect.p_value, effect.n_null_draws) == (
            score.layer,
            score.layer_b,
            score.p_value,
            FAST["n_permutations"],
        )
        assert effect.ci_low <= effect.value <= effect.ci_high
        assert effect.null_mean == 0.0
    # the base model is restored and the table survives a CSV round trip
    np.testing.assert_array_equal(score_items(base, task), base_scores)
    path = table.to_csv(tmp_path / "curve.csv")
    loaded = ResultsTable.from_csv(path)
    assert loaded == table
    # the typed curve: fields agree with the rows, and the table rebuilds it exactly
    assert EffectCurve.from_table(loaded) == [curve]
    assert [name for name, _ in curve.references] == ["base", "tuned"]
    assert curve.windows[0].blocks is None
    assert curve.windows[-1].blocks == range(N_LAYERS)
    np.testing.assert_array_equal(curve.effects, [r.value for r in effects])
    np.testing.assert_array_equal(curve.positions, np.arange(N_LAYERS + 1))
    assert curve.peak is not None
    assert curve.peak.value == _rows(table, statistic="peak_layer")[0].value


def test_sliding_transplant_windows():
    base, tuned = tiny_llava(1), tiny_llava(2)
    curve = transplant_curve(
        base, tuned, make_items(4), mode="sliding", width=2, stride=1, shell="base", **FAST
    )
    assert [w.blocks for w in curve.windows] == [range(0, 2), range(1, 3), range(2, 4)]
    np.testing.assert_array_equal(curve.positions, [1.5, 2.5, 3.5])
    windows = _rows(curve.to_table(), statistic="value")
    assert [(r.layer, r.layer_b) for r in windows] == [(1, 2), (2, 3), (3, 4)]
    assert all(r.checkpoint == "base" and r.checkpoint_b == "tuned" for r in windows)
    assert all("shell=base" in r.notes for r in windows)


@pytest.mark.parametrize("intervention", ["skip", "knockout", "ablate-zero"])
def test_visual_token_curves(intervention):
    model = tiny_llava(1)
    task = make_items(6, metric="exact-match")
    curve = visual_token_curve(
        model, task, intervention=intervention, width=2, checkpoint="tiny", **FAST
    )
    assert curve.checkpoint_b is None
    assert [name for name, _ in curve.references] == ["tiny"]
    table = curve.to_table()
    assert EffectCurve.from_table(table) == [curve]
    reference = _rows(table, statistic="reference")[0]
    windows = _rows(table, statistic="value")
    assert all(r.analysis == f"visual-{intervention}" for r in table)
    assert all(r.measure == "toy-exact-match" for r in table)
    if intervention == "skip":
        assert len(windows) == N_LAYERS + 1
        assert windows[0].value == reference.value  # k = 0 changes nothing
        assert windows[0].p_value == 1.0
    else:
        assert [(r.layer, r.layer_b) for r in windows] == [(1, 2), (2, 3), (3, 4)]
    assert all(0.0 <= r.value <= 1.0 for r in windows)


def test_bad_intervention_and_calibration():
    model = tiny_llava(1)
    with pytest.raises(ValueError, match="intervention must be one of"):
        visual_token_curve(model, make_items(2), intervention="erase")
    with pytest.raises(ValueError, match="n_resamples must be a positive int"):
        visual_token_curve(model, make_items(2), intervention="skip", n_resamples=0)


def _synthetic_curve(effects, n_items=60, noise=0.05, seed=0):
    """A sliding curve of width 1 whose window w lowers every item's score by effects[w]."""
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=n_items)
    scores = (
        reference - np.asarray(effects)[:, None] + noise * rng.normal(size=(len(effects), n_items))
    )
    task = make_items(n_items)
    windows = [range(w, w + 1) for w in range(len(effects))]
    return Curve(
        task,
        windows,
        scores,
        reference,
        n_blocks=len(effects),
        cumulative=False,
        sign=-1.0,
        calibration=CurveCalibration(300, 300, 0.95, 0),
    )


def test_summary_finds_a_planted_middle_peak():
    summary = _synthetic_curve([0.0, 0.1, 1.0, 0.8, 0.1, 0.0]).summary()
    peak = summary["peak_layer"]
    assert peak.value == 3.0  # block 2 is layer 3
    assert peak.ci_low == peak.ci_high == 3.0
    assert "middle third of the depth in 1.000" in peak.notes
    for side in ("early", "late"):
        contrast = summary[f"middle_minus_{side}"]
        assert contrast.value == pytest.approx(0.9 - 0.05, abs=0.03)
        assert contrast.p_value < 0.01
    assert "layers 3, 4 minus that of windows centred at layers 1, 2" in (
        summary["middle_minus_early"].notes
    )


def test_summary_of_a_monotone_curve_is_not_a_middle_peak():
    summary = _synthetic_curve([1.0, 0.8, 0.6, 0.4, 0.2, 0.0]).summary()
    assert summary["peak_layer"].value == 1.0
    assert summary["middle_minus_early"].ci_high < 0 < summary["middle_minus_late"].ci_low


def test_summary_of_a_flat_curve_is_not_significant():
    summary = _synthetic_curve([0.5] * 6, noise=0.3).summary()
    for side in ("early", "late"):
        contrast = summary[f"middle_minus_{side}"]
        assert contrast.ci_low < 0 < contrast.ci_high
        assert contrast.p_value > 0.05


def test_sign_flip_and_cluster_bootstrap():
    rng = np.random.default_rng(0)
    singles = Grouping.from_labels(np.arange(40))
    assert sign_flip_p_value(np.zeros(40), singles, 100, rng) == 1.0
    assert sign_flip_p_value(np.ones(40), singles, 999, rng) == pytest.approx(1 / 1000, abs=2e-3)
    noise = rng.normal(size=40)
    assert sign_flip_p_value(noise - noise.mean(), singles, 999, rng) > 0.5
    # two clusters of 20 identical items: only two independent signs, p can't go below 1/2
    pairs = Grouping.from_labels(np.repeat(["a", "b"], 20))
    assert sign_flip_p_value(np.ones(40), pairs, 999, rng) > 0.4
    # cluster bootstrap of a per-cluster constant only ever sees whole clusters
    values = np.repeat([0.0, 1.0], 20)
    means = cluster_means(values, pairs, cluster_bootstrap(2, 500, rng))
    assert set(np.round(means, 12)) <= {0.0, 0.5, 1.0}
    np.testing.assert_allclose(cluster_means(values, singles, np.arange(40)[None]), [0.5])
