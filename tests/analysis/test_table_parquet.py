"""ResultsTable's parquet writer and reader (the ``parquet`` extra)."""

import math
import sys

import pytest

from geomalign.analysis import COLUMNS, Result, ResultsTable


def _table() -> ResultsTable:
    return ResultsTable(
        [
            Result("cross-modal", "cka-linear", "base", "image/mean", 3, 0.8125, kind="similarity",
                   ci_low=0.75, ci_high=0.875, null_mean=0.1, null_std=0.02, p_value=1 / 101,
                   n_samples=200, notes="subsampled n=200 of 9000 seed=0 — ü", n_null_draws=100),
            Result("cross-modal", "cka-linear", "base", "image/mean", 0, math.nan,
                   kind="similarity", notes="undefined (NaN): all 200 rows of X are identical"),
            Result("layer-map", "mutual-knn", "tuned", "image/mean", 2, 1e-300,
                   checkpoint_b="tuned", view_b="text/mean", layer_b=7, ci_low=math.nan),
            Result("abstraction-phase", "id-gride", "base", "text/mean", None, 4.0,
                   statistic="peak_layer"),
        ]
    )  # fmt: skip


def test_round_trip_keeps_missing_entries_apart_from_nan(tmp_path):
    pytest.importorskip("pyarrow")
    table = _table()
    path = table.to_parquet(tmp_path / "results.parquet")
    back = ResultsTable.from_parquet(path)
    assert back == table
    assert back[1].ci_low is None  # null stays None
    assert math.isnan(back[2].ci_low)  # NaN stays NaN
    assert back[3].layer is None
    assert back[2].layer_b == 7
    assert (back[0].n_null_draws, back[1].n_null_draws) == (100, None)
    assert back[0].notes.endswith("ü")
    assert ResultsTable.from_parquet(ResultsTable().to_parquet(tmp_path / "empty.parquet")) == (
        ResultsTable()
    )


def test_pandas_reads_the_file_as_to_pandas_gives(tmp_path):
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    table = _table()
    frame = pandas.read_parquet(table.to_parquet(tmp_path / "results.parquet"))
    assert list(frame.columns) == list(table.to_pandas().columns)
    assert frame["layer"].isna().tolist() == [False, False, False, True]
    assert frame["n_samples"].iloc[0] == 200
    assert frame["value"].iloc[0] == 0.8125


def test_a_parquet_file_of_other_columns_is_refused(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow
    import pyarrow.parquet

    path = tmp_path / "other.parquet"
    pyarrow.parquet.write_table(pyarrow.table({"layer": [1, 2], "score": [0.1, 0.2]}), path)
    with pytest.raises(ValueError, match=r"other.parquet: expected a results table with the col"):
        ResultsTable.from_parquet(path)


def test_without_pyarrow_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"to_parquet\(\) needs pyarrow.*geomalign\[parquet\]"):
        _table().to_parquet(tmp_path / "results.parquet")
    assert not (tmp_path / "results.parquet").exists()


def test_a_parquet_file_written_before_the_last_columns_loads(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet

    path = _table().to_parquet(tmp_path / "results.parquet")
    older = tmp_path / "older.parquet"
    written = pyarrow.parquet.read_table(path)
    last = list(COLUMNS[COLUMNS.index("n_null_draws") :])
    pyarrow.parquet.write_table(written.drop(last), older)
    back = ResultsTable.from_parquet(older)
    assert [r.n_null_draws for r in back] == [None] * 4
    assert [r.undefined_reason for r in back] == [""] * 4
    pyarrow.parquet.write_table(written.drop(last[1:]), older)
    assert [r.n_null_draws for r in ResultsTable.from_parquet(older)] == [100, None, None, None]
    assert [r.p_value for r in back] == [r.p_value for r in _table()]
