from dataclasses import replace

import pytest

from geomalign.analysis import (
    Calibration,
    ResultsTable,
    abstraction_phase,
    cross_modal_curve,
    id_profile,
    layer_map,
    tuning_change_curve,
)
from geomalign.plotting import (
    calibration_caption,
    plot_curves,
    plot_layer_map,
    plot_results,
    save_figure,
)


@pytest.fixture(scope="module")
def results(planted_store):
    cal = Calibration(n_permutations=5, n_resamples=5)
    table = ResultsTable()
    for ckpt in ("base", "tuned"):
        table.extend(cross_modal_curve(planted_store, ckpt, measures="cka-linear", calibration=cal))
        table.extend(id_profile(planted_store, (ckpt, "image", "mean"), measure="id-twonn"))
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
        tuning_change_curve(planted_store, base="base", tuned="tuned", measures="cka-linear")
    )
    table.extend(abstraction_phase(table))
    return table


def test_plot_results_writes_every_figure_in_every_format(results, tmp_path):
    paths = plot_results(results, tmp_path / "figs", formats=["png", "svg", "pdf"])
    stems = sorted({p.stem for p in paths})
    assert stems == [
        "cross-modal_cka-linear",
        "id-profile_id-twonn_image-mean",
        "layer-map_cka-linear_base_image-mean_base_text-mean",
        "tuning-change_cka-linear",
    ]
    assert len(paths) == 12
    for p in paths:
        head = p.read_bytes()[:8]
        assert {
            ".png": head.startswith(b"\x89PNG"),
            ".pdf": head.startswith(b"%PDF"),
            ".svg": b"<" in head,
        }[p.suffix]
        assert p.stat().st_size > 5000


def test_curve_figure_has_one_line_per_checkpoint_and_explains_symbols(results):
    fig = plot_curves(results, analysis="cross-modal", measure="cka-linear")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "base: image/mean vs text/mean" in labels
    assert "tuned: image/mean vs text/mean" in labels
    assert "confidence interval" in labels
    assert "permutation p < 0.05" in labels
    assert "similarity: higher = more alike" in ax.get_ylabel()
    assert "0 = embedding output" in ax.get_xlabel()


def test_layer_map_figure_shape_and_labels(results):
    fig = plot_layer_map(
        results,
        measure="cka-linear",
        checkpoint="base",
        view="image/mean",
        checkpoint_b="base",
        view_b="text/mean",
    )
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (2, 3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "3", "4"]
    assert "similarity" in fig.axes[1].get_ylabel()


def test_bad_requests_raise(results, tmp_path):
    with pytest.raises(ValueError, match="no 'cross-checkpoint' rows for measure 'cka-linear'"):
        plot_curves(results, analysis="cross-checkpoint", measure="cka-linear")
    with pytest.raises(ValueError, match="formats must be a non-empty subset"):
        plot_results(results, tmp_path, formats=["jpg"])
    fig = plot_curves(results, analysis="cross-modal", measure="cka-linear")
    with pytest.raises(ValueError, match=r"x\.tiff: unsupported figure format 'tiff'"):
        save_figure(fig, tmp_path / "x.tiff")


def test_titles_carry_the_interval_level_resamples_and_n_from_the_columns(results, planted_store):
    rows = results.select(analysis="cross-modal")
    assert {(r.confidence, r.n_resamples) for r in rows} == {(0.95, 5)}
    n = rows[0].n_samples
    title = plot_curves(results, analysis="cross-modal", measure="cka-linear").axes[0].get_title()
    assert title.endswith(f"\n95% CI, 5 resamples; n = {n} samples")
    # the columns are read, not the notes: a table whose notes say otherwise keeps its caption
    other = ResultsTable(replace(r, notes="99% CI: bootstrap B=3") for r in rows)
    title = plot_curves(other, analysis="cross-modal", measure="cka-linear").axes[0].get_title()
    assert title.endswith(f"95% CI, 5 resamples; n = {n} samples")
    cal = Calibration(n_permutations=0, n_resamples=7, confidence=0.9)
    curve = cross_modal_curve(planted_store, "base", measures="cka-linear", calibration=cal)
    title = plot_curves(curve, analysis="cross-modal", measure="cka-linear").axes[0].get_title()
    assert title.endswith(f"90% CI, 7 resamples; n = {n} samples")
    mixed = ResultsTable([*rows, replace(rows[0], layer=99, confidence=0.8, n_resamples=9)])
    assert calibration_caption(mixed) == f"80%–95% CI, 5–9 resamples; n = {n} samples"
    assert calibration_caption(ResultsTable([replace(rows[0], confidence=None)])).startswith(
        "CI of unrecorded level"
    )
    profile = results.select(analysis="id-profile")
    assert calibration_caption(profile) == f"n = {profile[0].n_samples} samples"  # no CIs
