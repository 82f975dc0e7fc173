"""The comparison runner and ``geomalign finetune`` on a tiny built testbed."""

from __future__ import annotations

import math

import pytest
from _tiny_models import TINY_TESTBED

from geomalign.analysis import Result, ResultsTable
from geomalign.cli import finetune as finetune_cli
from geomalign.cli import main
from geomalign.tuning import FinetuneRun, WindowComparison, compare_windows

N_BLOCKS = TINY_TESTBED.text_layers


# The testbed's own stage 2 orders its batches with seed + 2.
STAGE2_SEED = TINY_TESTBED.seed + 2


@pytest.fixture(scope="module")
def comparison(tiny_testbed) -> WindowComparison:
    return compare_windows(
        tiny_testbed,
        range(2, 4),
        references=("early", "late"),
        seeds=(STAGE2_SEED,),
        progress=False,
    )


def test_runs_cover_full_selected_and_references(comparison, tiny_testbed):
    assert [run.name for run in comparison.runs] == ["full", "selected", "early", "late"]
    blocks = {run.name: run.blocks for run in comparison.runs}
    assert blocks == {
        "full": tuple(range(N_BLOCKS)),
        "selected": (2, 3),
        "early": (0, 1),
        "late": (N_BLOCKS - 2, N_BLOCKS - 1),
    }
    assert comparison.n_blocks == N_BLOCKS
    assert comparison.base == str(tiny_testbed.base)
    for run in comparison.runs:
        assert run.steps == TINY_TESTBED.stage2_steps
        assert run.seed == STAGE2_SEED
        assert run.wall_time > 0
        assert run.cpu_time > 0
        assert {"qa_accuracy", "caption_token_accuracy", "final_loss"} <= set(run.metrics)
    full, *windows = comparison.runs
    assert all(w.n_trainable == windows[0].n_trainable < full.n_trainable for w in windows)


def test_full_run_reproduces_the_testbeds_own_stage2(comparison, tiny_testbed):
    full = comparison.runs[0].metrics
    for name, value in tiny_testbed.metrics["tuned"].items():
        assert full[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


def test_summary_is_relative_to_the_full_run(comparison):
    rows = {row.name: row for row in comparison.summary("caption_token_accuracy")}
    full = rows["full"]
    assert full.time_pct_mean == full.trainable_pct == 100.0
    assert full.time_pct_std == 0.0
    runs = {run.name: run for run in comparison.runs}
    for name in ("selected", "early", "late"):
        expected = runs[name].wall_time / runs["full"].wall_time * 100
        assert rows[name].time_pct_mean == pytest.approx(expected)
        score = runs[name].metrics["caption_token_accuracy"]
        reference = runs["full"].metrics["caption_token_accuracy"]
        expected_score = 100 * score / reference if reference else math.nan
        assert rows[name].score_pct_mean == pytest.approx(expected_score, nan_ok=True)
    text = comparison.format_summary("caption_token_accuracy")
    assert text.splitlines()[1].startswith("full")
    assert "[2, 4)" in text
    with pytest.raises(ValueError, match="metric must be one of"):
        comparison.summary("bleu")


def test_table_rows(comparison, tmp_path):
    table = comparison.to_table()
    reloaded = ResultsTable.from_csv(table.to_csv(tmp_path / "runs.csv"))
    assert reloaded == table
    selected = table.select(checkpoint="selected", measure="wall_time")
    assert [row.statistic for row in selected] == ["value", "percent_of_full"]
    assert (selected[0].layer, selected[0].layer_b) == (3, 4)  # blocks [2, 4) -> layers 3..4
    assert not len(table.select(checkpoint="full", statistic="percent_of_full"))
    assert set(table.unique("measure")) == {
        "qa_accuracy",
        "caption_token_accuracy",
        "final_loss",
        "wall_time",
        "cpu_time",
        "n_trainable",
    }


def test_summary_over_seeds_uses_the_full_run_of_each_seed():
    def run(name: str, seed: int, time: float, score: float) -> FinetuneRun:
        return FinetuneRun(
            name=name,
            blocks=(0, 1),
            seed=seed,
            steps=1,
            wall_time=time,
            cpu_time=2 * time,
            n_trainable=10 if name == "full" else 5,
            metrics={"qa_accuracy": score},
        )

    comparison = WindowComparison(
        runs=(
            run("full", 0, 10.0, 0.5),
            run("w", 0, 8.0, 0.5),
            run("full", 1, 20.0, 0.4),
            run("w", 1, 12.0, 0.3),
        ),
        n_blocks=4,
        base="base",
    )
    w = comparison.summary()[1]
    assert w.time_pct_mean == pytest.approx(70.0)  # mean of 80 % and 60 %
    assert w.time_pct_std == pytest.approx(math.sqrt(200.0))  # ddof=1
    assert w.cpu_pct_mean == pytest.approx(70.0)
    assert w.score_pct_mean == pytest.approx(87.5)  # mean of 100 % and 75 %
    assert w.trainable_pct == 50.0
    assert w.n_seeds == 2


@pytest.mark.parametrize(
    ("selected", "kwargs", "match"),
    [
        ([1, 3], {}, "non-empty contiguous window"),
        ([], {}, "non-empty contiguous window"),
        ([N_BLOCKS], {}, "outside the model's"),
        ([0], {"seeds": [0, 0]}, "seeds must be distinct"),
        ([0], {"seeds": []}, "non-empty sequence"),
        ([0], {"references": ["middle"]}, "kinds must be among"),
    ],
)
def test_bad_arguments_fail_before_training(tiny_testbed, selected, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_windows(tiny_testbed, selected, progress=False, **kwargs)


def test_cli_selects_from_a_curve_and_writes_the_table(tiny_testbed, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(finetune_cli.PRESETS, "small", lambda seed: TINY_TESTBED)
    curve = ResultsTable(
        Result(
            analysis="id-profile",
            measure="id-gride",
            checkpoint="base",
            view="image/mean",
            layer=layer,
            value=value,
        )
        for layer, value in enumerate([3.0, 5.0, 9.0, 12.0, 7.0, 5.0, 4.0])
    ).to_csv(tmp_path / "results.csv")
    out = tmp_path / "runs.csv"
    argv = [
        "finetune",
        "--preset",
        "small",
        "--cache-dir",
        str(tiny_testbed.root.parent),
        "--window",
        "auto",
        "--from",
        str(curve),
        "--width",
        "2",
        "--references",
        "--steps",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    table = ResultsTable.from_csv(out)
    assert table.unique("checkpoint") == ["full", "selected"]
    selected = table.select(checkpoint="selected", measure="n_trainable")[0]
    assert (selected.layer, selected.layer_b) == (2, 3)  # peak at 3, higher neighbour at 2
    assert "selected" in capsys.readouterr().out
    assert main(argv) == 1  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
