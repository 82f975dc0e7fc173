"""A 40-sample store through every registered measure: undefined resamples never stop the run."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

from geomalign import metrics
from geomalign.analysis import Calibration, ResultsTable, analyze_store
from geomalign.cli import main
from geomalign.store import ActivationStore

N = 40


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """base and tuned x image and text x mean, layers 0..2, width 12, 40 samples."""
    path = tmp_path_factory.mktemp("small") / "small.h5"
    rng = np.random.default_rng(0)
    with ActivationStore.create(path, [f"s{i:02d}" for i in range(N)]) as store:
        for ckpt in ("base", "tuned"):
            store.add_checkpoint(ckpt, model=f"toy/{ckpt}", n_layers=2, hidden_size=12)
            for modality in ("image", "text"):
                shared = rng.normal(size=(N, 12))
                data = np.stack(
                    [shared + 0.5 * layer * rng.normal(size=(N, 12)) for layer in range(3)]
                )
                store.create_view(ckpt, modality, "mean", layers=[0, 1, 2], dim=12, dtype="float32")
                store.write(ckpt, modality, "mean", np.arange(N), data)
    return path


def test_every_measure_on_40_samples(small_store):
    seen: list[tuple[str, int]] = []
    table = analyze_store(
        small_store,
        measures=metrics.available(),
        calibration=Calibration(n_permutations=2, n_resamples=2),
        on_analysis=lambda name, rows: seen.append((name, len(rows))),
    )
    assert set(table.unique("measure")) == set(metrics.available())
    # every value is defined on 40 distinct rows
    assert np.isfinite(table.select(statistic="value").column("value")).all()
    # GRIDE's default scale (n1 = 16) needs 33 rows: a half-sample of 20 has too few, so its
    # rows keep their value and lose only the interval, with a note saying why
    gride = table.select(analysis="id-profile", measure="id-gride")
    assert len(gride) == 2 * 2 * 3
    for row in gride:
        assert row.ci_low is None
        assert row.ci_high is None
        assert "no CI: undefined on a resample" in row.notes
        assert "needs at least 33" in row.notes
    # TwoNN is defined on a half-sample: its interval is there
    twonn = table.select(analysis="id-profile", measure="id-twonn")
    assert all(r.ci_low is not None for r in twonn)
    # the rows are handed over after each analysis, growing
    assert [n for _, n in seen] == sorted(n for _, n in seen)
    assert seen[-1] == ("abstraction phases", len(table))


def test_cli_keeps_the_finished_analyses(small_store, tmp_path, monkeypatch, capsys):
    from geomalign.analysis import run

    def broken(*args, **kwargs):
        raise ValueError("id profile failed")

    monkeypatch.setattr(run, "id_profile", broken)
    out = tmp_path / "out"
    argv = ["analyze", str(small_store), "--measures", "cka-linear,id-twonn", "--out", str(out)]
    argv += ["--permutations", "2", "--resamples", "2", "--map-measures", ""]
    assert main(argv) == 1
    assert "id profile failed" in capsys.readouterr().err
    saved = ResultsTable.from_csv(out / "results.csv")
    assert set(saved.unique("analysis")) == {"cross-modal", "cross-checkpoint", "tuning-change"}
    assert not (out / "results.csv.partial").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_one_progress_bar_over_analyses_and_layers(small_store, monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    calibration = Calibration(n_permutations=0, n_resamples=0)
    analyze_store(
        small_store, measures=["cka-linear", "id-twonn"], calibration=calibration, progress=True
    )
    shown = sys.stderr.getvalue()
    # 11 analyses (2 cross-modal, 2 maps, 2 cross-checkpoint, 1 tuning change, 4 ID profiles)
    # of 3 layers each, counted on one bar whose count only grows
    assert "analyze: 100%" in shown
    assert "33/33" in shown
    counts = [int(m) for m in re.findall(r"\| *(\d+)/33", shown)]
    assert counts == sorted(counts)
    assert len(set(counts)) > 11  # moves within analyses, layer by layer
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bar
    analyze_store(small_store, measures=["cka-linear"], calibration=calibration, progress=True)
    assert sys.stderr.getvalue() == ""


def test_fewer_rows_than_k_leave_the_k_nn_layers_undefined(tmp_path):
    # 10 samples and the registry's k = 10: every layer of every k-NN analysis is undefined with
    # a note naming k and n; the run goes on (here to linear CKA) instead of stopping
    path = tmp_path / "ten.h5"
    rng = np.random.default_rng(1)
    with ActivationStore.create(path, [f"s{i}" for i in range(10)]) as store:
        for ckpt in ("base", "tuned"):
            store.add_checkpoint(ckpt, model=f"toy/{ckpt}", n_layers=1, hidden_size=6)
            for modality in ("image", "text"):
                store.create_view(ckpt, modality, "mean", layers=[0, 1], dim=6, dtype="float32")
                store.write(ckpt, modality, "mean", np.arange(10), rng.normal(size=(2, 10, 6)))
    table = analyze_store(
        path,
        measures=["mutual-knn", "cknna", "cka-linear"],
        calibration=Calibration(n_permutations=2, n_resamples=2),
    )
    knn_rows = [r for r in table if r.measure in ("mutual-knn", "cknna")]
    assert {r.analysis for r in knn_rows} >= {"cross-modal", "layer-map", "tuning-change"}
    for row in knn_rows:
        assert np.isnan(row.value)
        assert "got k=10 with n_samples=10" in row.notes
    assert np.isfinite(table.select(measure="cka-linear", statistic="value").column("value")).all()
    with pytest.raises(metrics.UndefinedMeasureError, match="got k=10 with n_samples=10"):
        metrics.mutual_knn(rng.normal(size=(10, 3)), rng.normal(size=(10, 3)))
    with pytest.raises(metrics.UndefinedMeasureError, match="needs k <= n_samples - 2"):
        metrics.mutual_knn(rng.normal(size=(11, 3)), rng.normal(size=(11, 3)))
