import math
from dataclasses import replace

import numpy as np
import pytest

from geomalign.analysis import COLUMNS, Result, ResultsTable


def _rows():
    return [
        Result(
            "cross-modal",
            "cka-linear",
            "base",
            "image/mean",
            0,
            0.1 + 0.2,
            checkpoint_b="base",
            view_b="text/mean",
            layer_b=0,
            kind="similarity",
            ci_low=1 / 3,
            ci_high=2 / 3,
            null_mean=1e-17,
            null_std=0.5,
            p_value=1 / 101,
            n_samples=2000,
            notes='subsampled n=2000 of 9000 seed=0, "quoted", with comma',
        ),
        Result(
            "id-profile", "id-gride", "tuned", "text/last", 12, np.float32(7.25), kind="dimension"
        ),
        Result("abstraction-phase", "id-gride", "tuned", "text/last", None, 4.5, statistic="onset"),
        Result(
            "intervention",
            "accuracy",
            "base",
            "image/mean",
            np.int64(3),
            float("nan"),
            notes="line one\nline two",
        ),
    ]


def test_csv_round_trip_is_exact(tmp_path):
    table = ResultsTable(_rows())
    path = table.to_csv(tmp_path / "results.csv")
    back = ResultsTable.from_csv(path)
    assert back == table
    assert back[0].value == 0.1 + 0.2  # full float precision, not a rounded string
    assert back[0].null_mean == 1e-17
    assert back[1].layer_b is None
    assert back[1].ci_low is None
    assert isinstance(back[3].layer, int)
    assert math.isnan(back[3].value)
    assert back[3].notes == "line one\nline two"
    assert [r.statistic for r in back] == ["value", "value", "onset", "value"]


def test_numpy_scalars_are_stored_as_python_numbers():
    row = ResultsTable(_rows())[1]
    assert type(row.value) is float
    assert ResultsTable(_rows())[3].layer == 3
    assert type(ResultsTable(_rows())[3].layer) is int


def test_select_unique_column():
    table = ResultsTable(_rows())
    assert len(table.select(checkpoint="tuned")) == 2
    assert table.unique("analysis")[:2] == ["cross-modal", "id-profile"]
    layers = table.column("layer")
    assert np.isnan(layers[2])
    assert layers[1] == 12
    with pytest.raises(ValueError, match="unknown column"):
        table.select(stage="x")


def test_equality_detects_a_changed_value():
    a, b = ResultsTable(_rows()), ResultsTable(_rows())
    b.append(Result("cross-modal", "cka-linear", "base", "image/mean", 1, 0.5))
    assert a != b
    a.append(Result("cross-modal", "cka-linear", "base", "image/mean", 1, 0.5000001))
    assert a != b


def test_header_mismatch_is_rejected(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("checkpoint,value\nbase,1\n")
    with pytest.raises(ValueError, match=r"bad\.csv: expected a results table whose header"):
        ResultsTable.from_csv(path)


def test_bad_cell_names_file_line_and_column(tmp_path):
    path = ResultsTable(_rows()[:1]).to_csv(tmp_path / "r.csv")
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[COLUMNS.index("layer")] = "three"
    path.write_text("\n".join([lines[0], ",".join(cells)]) + "\n")
    with pytest.raises(ValueError, match=r"r\.csv, line 2: column 'layer' must hold an integer"):
        ResultsTable.from_csv(path)


def test_rejects_non_result_rows_and_bad_types():
    with pytest.raises(TypeError, match="Result instances"):
        ResultsTable([{"value": 1}])
    with pytest.raises(TypeError, match=r"Result.layer must be an integer"):
        ResultsTable([Result("a", "m", "c", "v", 1.5, 0.0)])


def test_interval_level_and_resamples_round_trip_and_older_tables_load(tmp_path):
    row = Result("cross-modal", "cka-linear", "base", "image/mean", 1, 0.5, ci_low=0.4,
                 ci_high=0.6, confidence=0.9, n_resamples=200)  # fmt: skip
    table = ResultsTable([row])
    assert ResultsTable.from_csv(table.to_csv(tmp_path / "new.csv")) == table
    # a table written before the two columns existed: the header and cells end at notes
    old = tmp_path / "old.csv"
    lines = table.to_csv(old).read_text().splitlines()
    kept = COLUMNS.index("notes") + 1
    old.write_text("\n".join(",".join(line.split(",")[:kept]) for line in lines) + "\n")
    (loaded,) = ResultsTable.from_csv(old)
    assert (loaded.ci_low, loaded.confidence, loaded.n_resamples) == (0.4, None, None)


def test_null_draws_round_trip_and_tables_without_the_column_load(tmp_path):
    row = Result("cross-modal", "cka-linear", "base", "image/mean", 1, 0.5, p_value=1 / 101,
                 n_null_draws=100, ci_low=0.4, ci_high=0.6, confidence=0.95,
                 n_resamples=50)  # fmt: skip
    table = ResultsTable([row])
    (back,) = ResultsTable.from_csv(table.to_csv(tmp_path / "new.csv"))
    assert back == row
    assert back.n_null_draws == 100
    # a table written before the column (and undefined_reason) existed: it ends at n_resamples
    old = tmp_path / "old.csv"
    lines = table.to_csv(old).read_text().splitlines()
    kept = COLUMNS.index("n_resamples") + 1
    old.write_text("\n".join(",".join(line.split(",")[:kept]) for line in lines) + "\n")
    (loaded,) = ResultsTable.from_csv(old)
    assert (loaded.p_value, loaded.n_resamples, loaded.n_null_draws) == (1 / 101, 50, None)
    with pytest.raises(TypeError, match=r"Result.n_null_draws must be an integer"):
        ResultsTable([replace(row, n_null_draws=2.5)])
