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
from geomalign.plotting import plot_curves, plot_layer_map, plot_results, save_figure


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
