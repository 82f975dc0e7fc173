import importlib.util

import pytest

from geomalign.analysis import ResultsTable
from geomalign.cli import main


def test_analyze_then_plot(planted_store, tmp_path, capsys):
    out = tmp_path / "results"
    argv = [
        "analyze",
        str(planted_store),
        "--measures",
        "cka-linear,id-twonn",
        "--out",
        str(out),
        "--permutations",
        "5",
        "--resamples",
        "5",
        "--map-measures",
        "",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Cross-modal alignment" in printed
    assert "Intrinsic dimension" in printed
    table = ResultsTable.from_csv(out / "results.csv")
    assert set(table.unique("analysis")) == {
        "cross-modal",
        "cross-checkpoint",
        "tuning-change",
        "id-profile",
        "abstraction-phase",
    }
    assert (out / "summary.txt").read_text().startswith("checkpoints: base, tuned")
    assert (out / "figures" / "cross-modal_cka-linear.png").stat().st_size > 0

    assert main(argv) == 1  # existing results are kept without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--base", "tuned"]) == 0
    assert ResultsTable.from_csv(out / "results.csv")[0].checkpoint == "tuned"

    assert main(["plot", str(out), "--formats", "svg", "--out", str(tmp_path / "svg")]) == 0
    assert (tmp_path / "svg" / "id-profile_id-twonn_image-mean.svg").exists()


def test_analyze_parquet(planted_store, tmp_path, capsys, monkeypatch):
    out = tmp_path / "results"
    argv = ["analyze", str(planted_store), "--measures", "cka-linear", "--out", str(out)]
    argv += ["--permutations", "0", "--resamples", "0", "--map-measures", "", "--parquet"]
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else find_spec(name)
    )
    assert main(argv) == 1  # refused before any analysis runs
    assert "--parquet needs pyarrow; install it: pip install 'geomalign[parquet]'" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    monkeypatch.undo()
    pytest.importorskip("pyarrow")
    assert main(argv) == 0
    assert "results.parquet" in capsys.readouterr().out
    assert ResultsTable.from_parquet(out / "results.parquet") == ResultsTable.from_csv(
        out / "results.csv"
    )
