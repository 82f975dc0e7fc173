import re

import numpy as np
import pytest

from geomalign import metrics
from geomalign.analysis import (
    Calibration,
    View,
    compare_views,
    cross_checkpoint_curve,
    cross_modal_curve,
    tuning_change_curve,
)
from geomalign.store import ActivationStore

from .planted import LAYERS, N_SAMPLES


def _by_layer(table, measure):
    rows = sorted(table.select(measure=measure), key=lambda r: r.layer)
    assert [r.layer for r in rows] == LAYERS
    return np.array([r.value for r in rows]), rows


def test_cross_modal_curve_finds_the_rotated_layer(planted_store):
    cal = Calibration(n_permutations=30, n_resamples=20)
    table = cross_modal_curve(
        planted_store, "base", measures=["cka-linear", "mutual-knn"], calibration=cal
    )
    cka, rows = _by_layer(table, "cka-linear")
    # base: text layer 2 is a rotation of image layer 2; text layer 4 comes from image layer 1.
    assert cka[2] == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.delete(cka, 2) < 0.5)
    assert rows[2].p_value == pytest.approx(1 / 31)
    assert all(r.n_null_draws == 30 for r in rows)  # the permutations behind each p-value
    assert rows[2].null_mean < 0.5
    assert rows[2].ci_low <= rows[2].value <= rows[2].ci_high + 1e-9
    assert all(
        r.kind == "similarity"
        and r.view == "image/mean"
        and r.view_b == "text/mean"
        and r.checkpoint == r.checkpoint_b == "base"
        and r.n_samples == N_SAMPLES
        for r in rows
    )
    knn, _ = _by_layer(table, "mutual-knn")
    assert knn[2] == pytest.approx(1.0)
    assert np.all(np.delete(knn, 2) < 0.5)


def test_cross_modal_curve_notes_the_max_t_p_value_over_its_layers(planted_store):
    from geomalign.analysis import summarize

    cal = Calibration(n_permutations=30)
    table = cross_modal_curve(planted_store, "base", measures="cka-linear", calibration=cal)
    _, rows = _by_layer(table, "cka-linear")
    found = [re.search(r"max-T p=(\S+) over (\d+) layers", r.notes) for r in rows]
    assert all(f is not None and f.group(2) == str(len(LAYERS)) for f in found)
    adjusted = np.array([float(f.group(1)) for f in found])
    assert np.array([r.max_t_p_value for r in rows]) == pytest.approx(adjusted, rel=1e-3)
    unadjusted = np.array([r.p_value for r in rows])
    # the null of the best of the layers is at least as extreme as each layer's own null
    assert np.all(adjusted >= unadjusted - 1e-12)
    assert adjusted[2] == pytest.approx(1 / 31, abs=1e-5)  # above every joint draw
    assert np.all(np.delete(adjusted, 2) > 0.05)
    assert "max-T p=0.03226 for the best of 6 layers" in summarize(table)


def test_cross_checkpoint_curve_finds_the_layers_tuning_kept(planted_store):
    table = cross_checkpoint_curve(
        planted_store, "image", base="base", tuned="tuned", measures=["cka-linear"]
    )
    cka, rows = _by_layer(table, "cka-linear")
    np.testing.assert_allclose(cka[:3], 1.0, atol=1e-6)
    assert np.all(cka[3:] < 0.5)
    assert rows[0].checkpoint == "base"
    assert rows[0].checkpoint_b == "tuned"
    assert rows[0].analysis == "cross-checkpoint"


def test_tuning_change_is_significant_only_where_planted(planted_store):
    cal = Calibration(n_resamples=40)
    table = tuning_change_curve(
        planted_store, base="base", tuned="tuned", measures=["cka-linear"], calibration=cal
    )
    diff, rows = _by_layer(table, "cka-linear")
    # tuned aligns image and text at layers 2, 3, 4; base at layer 2 only.
    assert diff[2] == pytest.approx(0.0, abs=1e-6)
    assert diff[3] > 0.5
    assert diff[4] > 0.5
    assert rows[3].p_value < 0.05
    assert rows[4].p_value < 0.05
    assert all(r.n_null_draws == 40 for r in rows)  # the p-value rests on the resamples
    assert rows[3].ci_low > 0
    assert rows[2].ci_low <= 1e-6
    assert rows[2].ci_high >= -1e-6
    assert rows[3].checkpoint == "tuned"
    assert rows[3].checkpoint_b == "base"


def test_streamed_linear_cka_is_exact_when_subsampling(planted_store):
    cal = Calibration(max_samples=60, working_memory=0.01)  # 60 of 160 rows, blocks of ~80 rows
    table = compare_views(
        planted_store,
        ("base", "image", "mean"),
        ("tuned", "image", "mean"),
        measures=["cka-linear", "mutual-knn"],
        layers=[3],
        calibration=cal,
    )
    cka = table.select(measure="cka-linear")[0]
    with ActivationStore(planted_store) as store:
        X = store.read("base", "image", "mean", 3)
        Y = store.read("tuned", "image", "mean", 3)
    assert cka.value == pytest.approx(metrics.cka(X, Y), rel=1e-6)  # float32 rounding
    assert cka.n_samples == N_SAMPLES
    assert "streamed" in cka.notes
    knn = table.select(measure="mutual-knn")[0]
    assert knn.n_samples == 60
    assert "subsampled n=60 of 160 seed=0" in knn.notes
    assert cka.n_subsample == knn.n_subsample == 60  # the streamed value's CI and null: 60 too
    from geomalign.analysis import summarize

    assert "some measures ran on a subsample" in summarize(table)
    whole = compare_views(planted_store, ("base", "image", "mean"), ("tuned", "image", "mean"),
                          measures="mutual-knn", layers=[3])  # fmt: skip
    assert whole[0].n_subsample is None
    assert "some measures ran on a subsample" not in summarize(whole)


def test_subsample_depends_on_the_seed(planted_store):
    def value(seed):
        cal = Calibration(max_samples=50, random_state=seed)
        return compare_views(
            planted_store,
            ("base", "image", "mean"),
            ("base", "text", "mean"),
            measures="mutual-knn",
            layers=[0],
            calibration=cal,
        )[0].value

    assert value(0) == value(0)
    assert value(0) != value(1)


def test_curve_rejects_bad_inputs(planted_store, tmp_path):
    with pytest.raises(ValueError, match=r"'id-twonn' \(dimension\) takes 1 view"):
        cross_modal_curve(planted_store, "base", measures=["id-twonn"])
    with pytest.raises(ValueError, match=r"has layers \[0, 1, 2, 3, 4, 5\]; requested \[7\]"):
        cross_modal_curve(planted_store, "base", measures="cka-linear", layers=[7])
    with pytest.raises(ValueError, match="no view base:audio/mean"):
        compare_views(
            planted_store,
            View("base", "audio", "mean"),
            ("base", "text", "mean"),
            measures="cka-linear",
        )
    with pytest.raises(ValueError, match="no pooled 'image' view"):
        cross_modal_curve(planted_store, "other", measures="cka-linear")
    with pytest.raises(TypeError, match="view_a must be a View"):
        compare_views(planted_store, "base:image", ("base", "text", "mean"), measures="cka-linear")


def test_incomplete_and_token_views_are_refused(tmp_path):
    path = tmp_path / "partial.h5"
    ids = [f"s{i}" for i in range(10)]
    with ActivationStore.create(path, ids) as store:
        store.add_checkpoint("base", model="m")
        store.create_view("base", "image", "mean", layers=[0], dim=4)
        store.create_view("base", "text", "mean", layers=[0], dim=4)
        store.create_view("base", "text", "none", layers=[0], dim=4, tokens_per_sample=[2] * 10)
        store.write("base", "image", "mean", np.arange(10), np.ones((1, 10, 4)))
        store.write("base", "text", "mean", np.arange(6), np.ones((1, 6, 4)))
        store.write("base", "text", "none", np.arange(10), np.ones((1, 20, 4)))
    with pytest.raises(ValueError, match=r"base:text/mean is incomplete: 4 of 10 .*first: s6"):
        compare_views(
            path, ("base", "image", "mean"), ("base", "text", "mean"), measures="cka-linear"
        )
    with pytest.raises(ValueError, match="stores every token"):
        compare_views(
            path, ("base", "image", "mean"), ("base", "text", "none"), measures="cka-linear"
        )
