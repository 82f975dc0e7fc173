"""RunComparison's typed summary: means, t-intervals and ratios to the full run of each seed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from geomalign.tuning import FinetuneResult, RunComparison, RunSummary, TrainableParameters
from geomalign.tuning.costs import Costs


def _run(blocks, wall, after, *, trainable=10):
    return FinetuneResult(
        blocks=tuple(blocks),
        method="weights",
        steps=4,
        costs=Costs(wall, 2 * wall, None, 1 << 20, "rss"),
        optimizer_time=0.1,
        tokens=100,
        trainable=TrainableParameters(trainable, 40, {}, tuple(blocks)),
        state={"optimizer_state_bytes": 8},
        stop_below=None,
        world_size=1,
        losses=np.array([1.0, 0.5]),
        before={"exact_match": 0.1},
        after={"exact_match": after},
    )


def test_summary_is_typed_and_relative_to_the_full_run_of_each_seed(tmp_path):
    runs = (
        ("full", 0, _run(range(4), 10.0, 0.5, trainable=40)),
        ("window", 0, _run(range(1, 3), 5.0, 0.4)),
        ("full", 1, _run(range(4), 20.0, 0.4, trainable=40)),
        ("window", 1, _run(range(1, 3), 8.0, 0.4)),
    )
    comparison = RunComparison(runs, "model", 4)
    full, window = comparison.summary()
    assert isinstance(window, RunSummary)
    assert (full.kind, window.kind, window.blocks, window.n_seeds) == ("full", "window", "1-2", 2)
    assert full.score_pct_full == full.time_pct_full == 100.0
    assert window.score == pytest.approx(0.4)
    assert window.score_pct_full == pytest.approx(100 * (0.4 / 0.5 + 0.4 / 0.4) / 2)
    assert window.time_pct_full == pytest.approx(100 * (5 / 10 + 8 / 20) / 2)
    half = stats.t.ppf(0.975, 1) * stats.sem([5.0, 8.0])
    assert window.wall_time_ci == pytest.approx((6.5 - half, 6.5 + half))
    assert window.trainable_share == pytest.approx(0.25)
    text = comparison.format_summary()
    assert text.splitlines()[2].startswith("window")
    assert comparison.plot(tmp_path / "runs.png").is_file()
