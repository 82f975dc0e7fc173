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
