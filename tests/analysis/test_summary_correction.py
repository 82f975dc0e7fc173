"""The summary's correction across layers and its remarks on the p-value floor."""

from __future__ import annotations

from dataclasses import replace

import pytest

from geomalign.analysis import ResultsTable, summarize

from .tables import change_rows


def test_layers_are_called_significant_after_holm_by_default():
    table = change_rows([0.001, 0.02, 0.03, 0.5], draws=2000)
    text = summarize(table)
    assert "Holm-adjusted p <= 0.05 over 4 layers at layers 0" in text
    assert "layers 0, 1" not in text
    unadjusted = summarize(table, correction="none")
    assert "p (unadjusted) <= 0.05 at layers 0, 1, 2" in unadjusted
    assert "BH-adjusted p (FDR) <= 0.05 over 4 layers at layers 0, 1, 2" in summarize(
        table, correction="bh"
    )
    with pytest.raises(ValueError, match="correction must be one of"):
        summarize(table, correction="sidak")


def test_floor_and_unreachable_level_are_said():
    floor = 2 / 51
    text = summarize(change_rows([floor, floor, 0.5, 0.9, 0.9], draws=50))
    assert "p at its floor 0.039 (= 2/(50+1)) at layers 0, 1" in text
    assert "no layer with Holm-adjusted p <= 0.05 over 5 layers" in text
    assert "use at least 199 for a single layer to reach it" in text


def test_the_floor_is_read_from_the_draws_column_not_the_notes():
    """The number of draws comes from ``n_null_draws``; notes saying otherwise are ignored."""
    table = ResultsTable(replace(r, notes="B=5000") for r in change_rows([2 / 51, 0.5], draws=50))
    assert "p at its floor 0.039 (= 2/(50+1)) at layers 0" in summarize(table)
    no_column = ResultsTable(replace(r, n_null_draws=None) for r in table)
    assert "floor" not in summarize(no_column)
