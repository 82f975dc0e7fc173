"""Planted windows: a strongly planted late window is found, the null variant gives no window."""

from __future__ import annotations

import dataclasses

import pytest
from _tiny_models import TINY_TESTBED

from geomalign.testbed import (
    Located,
    build_testbed,
    iou,
    planted_blocks,
    planted_study,
    recovered,
)


def test_planted_blocks_and_verdicts():
    assert planted_blocks("early", 6) == range(0, 2)
    assert planted_blocks("middle", 6) == range(2, 4)
    assert planted_blocks("late", 6, width=3) == range(3, 6)
    assert planted_blocks("null", 6) == range(0)
    assert planted_blocks("full", 6) == range(6)
    with pytest.raises(ValueError, match="kind must be one of"):
        planted_blocks("mid", 6)
    assert iou(range(4, 6), range(3, 5)) == pytest.approx(1 / 3)
    assert recovered(range(4, 6), Located(range(4, 6)))
    assert not recovered(range(4, 6), Located(range(3, 5)))
    assert not recovered(range(4, 6), Located(None, input=True))
    assert recovered(range(0), Located(None, input=True))  # null: no window is the right answer
    assert not recovered(range(0), Located(range(0, 2)))


@pytest.mark.slow
def test_a_strongly_planted_window_is_recovered_and_the_null_variant_raises_no_alarm(tmp_path):
    # the tiny testbed with 64 held-out images: enough item groups for the transplant's
    # sign-flip test to reach a Holm-corrected 0.05 over 7 windows
    config = dataclasses.replace(TINY_TESTBED, n_test=64)
    testbed = build_testbed(config, cache_dir=tmp_path / "cache", progress=False)
    study = planted_study(
        testbed,
        tmp_path / "study",
        kinds=("late", "null"),
        steps=40,
        lr=3e-2,
        n_pairs=48,
        max_images=64,
    )
    late, null = study.located["late"], study.located["null"]
    # blocks 4-5 changed: layers 0..4 are the base's exactly, layer 5 is not
    for analysis in ("cross-checkpoint text", "cross-checkpoint image", "transplant (blocks only)"):
        assert late[analysis].blocks == range(4, 6), (analysis, late[analysis])
    # the projector changed: image layers differ from layer 0 on, caption layers not at all;
    # a transplant whose first window carries the projector (adjacent shell) sees it at block 0
    assert null["cross-checkpoint image"] == Located(None, input=True)
    assert null["cross-checkpoint text"] == Located(None)
    for analysis in ("cross-checkpoint text", "tuning-change", "transplant (blocks only)"):
        assert null[analysis].blocks is None, (analysis, null[analysis])
    transplant = study.table.select(
        analysis="transplant-cumulative", checkpoint_b="null", statistic="effect"
    )
    blocks_only = [r for r in transplant if "shell=base" in r.notes]
    assert blocks_only
    assert all(r.value == 0 for r in blocks_only)
