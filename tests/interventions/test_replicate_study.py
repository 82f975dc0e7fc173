"""examples/replicate_study.py --dry-run: extraction, geometry and causal curves end to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from geomalign.analysis.table import ResultsTable

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "replicate_study.py"


def test_dry_run_writes_every_result(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("replicate_study", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--dry-run", "--out", str(tmp_path), "--qa-items", "12"]
    module.main([*argv, "--resamples", "20", "--batch-size", "12"])
    printed = capsys.readouterr().out
    assert "neighbourhood overlap" in printed
    assert "two-part split" in printed
    assert (tmp_path / "geometry" / "results.csv").is_file()
    assert list((tmp_path / "geometry" / "figures").glob("*.png"))
    effects = ResultsTable.from_csv(tmp_path / "causal" / "effects.csv")
    assert effects.unique("measure") == ["coco-qa-exact", "coco-qa-text-exact"]
    assert effects.unique("analysis") == [
        "transplant-cumulative",
        "transplant-reverse",
        "visual-knockout",
    ]
    assert (tmp_path / "causal" / "effects.png").stat().st_size > 10_000
