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
    captured = capsys.readouterr()
    printed = captured.out
    # max-T (the default here: the layers share their half-samples) cannot go below 1/6
    assert (
        "warning: with --resamples 5 the smallest max-t-adjusted tuning-change p over 6 layers "
        "is 0.17 > 0.05" in captured.err
    )
    assert "use --resamples 19 or more" in captured.err
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
    assert main([*argv, "--overwrite", "--base", "tuned", "--correction", "bh"]) == 0
    assert ResultsTable.from_csv(out / "results.csv")[0].checkpoint == "tuned"
    assert "BH-adjusted p (FDR)" in (out / "summary.txt").read_text()
    # 5 resamples give two-sided p-values of at least 2/6, too large for Holm over 6 layers
    assert main([*argv, "--overwrite", "--correction", "holm"]) == 0
    assert "the smallest holm-adjusted tuning-change p over 6 layers is 1 > 0.05" in (
        capsys.readouterr().err
    )

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


def test_automatic_permutations_can_pass_the_correction():
    import argparse

    from geomalign.cli.analyze import add_calibration_arguments, permutations_for

    parser = argparse.ArgumentParser()
    add_calibration_arguments(parser)
    args = parser.parse_args([])
    assert args.permutations == "auto"
    assert args.correction == "auto"
    assert permutations_for(args, 33) == 100  # max-T's smallest p is 1 / 101 over any layers
    holm = parser.parse_args(["--correction", "holm"])
    assert permutations_for(holm, 33) == 659  # Holm's smallest p, 33 / 660, is <= 0.05
    assert permutations_for(holm, 6) == 119
    assert permutations_for(holm, 2) == 100
    assert permutations_for(parser.parse_args(["--correction", "none"]), 33) == 100
    assert permutations_for(parser.parse_args(["--permutations", "40"]), 33) == 40
