"""``geomalign toy build|eval`` on the small testbed (reused from the cache, never retrained)."""

import json

import pytest

from geomalign.cli import main


def test_build_reuses_the_cache_and_prints_paths_and_metrics(small_testbed, capsys):
    argv = ["toy", "build", "--small", "--cache-dir", str(small_testbed.root.parent)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(small_testbed.tuned) in printed
    assert ["llm", "vision", "base", "tuned"] in [row.split() for row in printed.splitlines()]
    line = next(row for row in printed.splitlines() if row.startswith("qa_accuracy "))
    base, tuned = line.split()[1:]  # the text LLM and the vision tower have no such score
    assert float(tuned) == pytest.approx(small_testbed.metrics["tuned"]["qa_accuracy"], abs=5e-4)
    assert float(base) == pytest.approx(small_testbed.metrics["base"]["qa_accuracy"], abs=5e-4)


def test_eval_scores_a_checkpoint_and_writes_json(small_testbed, tmp_path, capsys):
    out = tmp_path / "scores.json"
    argv = ["toy", "eval", "--small", "--cache-dir", str(small_testbed.root.parent)]
    assert main([*argv, str(small_testbed.base), "--json", str(out)]) == 0
    assert "qa_accuracy/colour" in capsys.readouterr().out
    scores = json.loads(out.read_text())
    recorded = small_testbed.metrics["base"]
    assert scores == {
        str(small_testbed.base): {k: v for k, v in recorded.items() if k != "final_loss"}
    }


def test_toy_needs_an_action(capsys):
    with pytest.raises(SystemExit):
        main(["toy"])
    assert "build" in capsys.readouterr().err
