"""Probe curves from a store with planted structure, their figure, and the probes CLI."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign.analysis.table import ResultsTable
from geomalign.cli import main
from geomalign.interventions.plotting import plot_probe_curves
from geomalign.interventions.probe_curves import probe_curves
from geomalign.store import ActivationStore

from .conftest import run_intervene

N, DIM = 150, 12


@pytest.fixture
def planted_store(tmp_path):
    """colour is decodable at layer 1 in both views with a shared code, at layer 2 in text only.

    Layer 0 is noise in both views; at layer 1 the image view is the text view shifted and scaled
    (the same probe works on both); at layer 2 the image view is noise.
    """
    rng = np.random.default_rng(0)
    colour = np.array(["red", "green", "blue"])[rng.integers(3, size=N)]
    codes = np.unique(colour, return_inverse=True)[1]
    centres = 3.0 * rng.normal(size=(3, DIM))
    text = np.stack([rng.normal(size=(N, DIM)), *[centres[codes] + rng.normal(size=(N, DIM))] * 2])
    image = np.stack([rng.normal(size=(N, DIM)), 2.0 * text[1] + 5.0, rng.normal(size=(N, DIM))])
    path = tmp_path / "planted.h5"
    ids = [f"s{i:03d}" for i in range(N)]
    with ActivationStore.create(
        path, ids, labels={"colour": colour, "noise": rng.permutation(colour)}
    ) as store:
        store.add_checkpoint("tuned", model="toy", n_layers=2, hidden_size=DIM)
        for modality, data in (("text", text), ("image", image)):
            store.create_view("tuned", modality, "mean", layers=[0, 1, 2], dim=DIM)
            store.write("tuned", modality, "mean", np.arange(N), data)
    return path


def _value(table, **criteria):
    (row,) = list(table.select(statistic="value", **criteria))
    return row.value


def test_probe_curves_find_the_planted_layers(planted_store):
    table = probe_curves(planted_store, "tuned", "colour", n_splits=3, n_permutations=3)
    colour = "probe-accuracy/colour"
    for view in ("text/mean", "image/mean"):
        assert _value(table, analysis="probe", measure=colour, view=view, layer=0) < 0.55
        assert _value(table, analysis="probe", measure=colour, view=view, layer=1) > 0.95
    assert _value(table, analysis="probe", measure=colour, view="text/mean", layer=2) > 0.95
    assert _value(table, analysis="probe", measure=colour, view="image/mean", layer=2) < 0.55
    for source, target in (("text/mean", "image/mean"), ("image/mean", "text/mean")):
        transfer = {"analysis": "probe-transfer", "measure": colour, "view": source}
        assert _value(table, view_b=target, layer=1, **transfer) > 0.95
        assert _value(table, view_b=target, layer=2, **transfer) < 0.55
    (chance,) = list(table.select(measure=colour, statistic="chance"))
    assert 1 / 3 <= chance.value < 0.5
    significant = table.select(analysis="probe", measure=colour, layer=1, statistic="value")
    assert np.all(significant.column("p_value") == pytest.approx(1 / 4))
    assert np.all(significant.column("n_null_draws") == 3)
    assert "3-fold stratified CV" in significant[0].notes


def test_probe_curves_options_and_errors(planted_store):
    with ActivationStore(planted_store) as store:
        table = probe_curves(store, "tuned", ["colour", "noise"], views=["image/mean"], layers=[1])
    assert {r.analysis for r in table} == {"probe"}
    assert len(table.select(statistic="value")) == 2
    assert _value(table, measure="probe-accuracy/noise") < 0.55
    with pytest.raises(ValueError, match=r"no label column \['shape'\]"):
        probe_curves(planted_store, "tuned", "shape")
    with pytest.raises(ValueError, match="layers \\[7\\] are not in every view"):
        probe_curves(planted_store, "tuned", "colour", layers=[1, 7])
    with pytest.raises(ValueError, match="views must be '<modality>/<pooling>'"):
        probe_curves(planted_store, "tuned", "colour", views=["image"])


def test_probe_figure_and_cli(planted_store, tmp_path):
    argv = [
        "intervene",
        "probes",
        str(planted_store),
        "--checkpoint",
        "tuned",
        "--labels",
        "colour",
        "--folds",
        "3",
        "--layers",
        "1,2",
    ]
    table, argv = run_intervene(argv, tmp_path / "probes", "probes")
    assert len(table.select(analysis="probe-transfer")) == 2 * 2
    assert main([*argv, "--overwrite", "--labels", "shape"]) == 1
    fig = plot_probe_curves(table)
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no probe rows"):
        plot_probe_curves(ResultsTable())
