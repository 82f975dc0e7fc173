"""``analyze_store(..., n_jobs=)``: analyses in worker processes give the serial table."""

import dataclasses
import math

import pytest

from geomalign import metrics
from geomalign.analysis import Calibration, analyze_store

MEASURES = ["cka-linear", "mutual-knn", "id-twonn"]
CALIBRATION = Calibration(n_permutations=9, n_resamples=8)


def _same(a, b):
    """Rows equal field by field; floats to rounding (workers may run other thread counts)."""
    assert len(a) == len(b)
    for row_a, row_b in zip(a, b, strict=True):
        for field in dataclasses.fields(row_a):
            x, y = getattr(row_a, field.name), getattr(row_b, field.name)
            if isinstance(x, float) and isinstance(y, float):
                same = (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-9)
                assert same, (field.name, row_a)
            else:
                assert x == y, (field.name, row_a)


def test_workers_give_the_serial_table_in_order(planted_store):
    serial_calls, parallel_calls = [], []
    serial = analyze_store(
        planted_store,
        measures=MEASURES,
        calibration=CALIBRATION,
        on_analysis=lambda name, table: serial_calls.append((name, len(table))),
    )
    parallel = analyze_store(
        planted_store,
        measures=MEASURES,
        calibration=CALIBRATION,
        n_jobs=2,
        on_analysis=lambda name, table: parallel_calls.append((name, len(table))),
    )
    _same(serial, parallel)
    assert parallel_calls == serial_calls  # saved in analysis order, each with the rows so far
    assert len(serial_calls) > 5


def _raises(X):
    raise RuntimeError("the measure broke")


def test_a_failing_analysis_in_a_worker_keeps_the_analyses_before_it(planted_store):
    broken = metrics.Measure("test-broken", "dimension", 1, _raises, "Always raises.")
    saved = []
    with pytest.raises(RuntimeError, match="the measure broke"):
        analyze_store(
            planted_store,
            measures=["cka-linear", broken],  # the ID profiles, which fail, come last
            calibration=CALIBRATION,
            n_jobs=2,
            on_analysis=lambda name, table: saved.append(name),
        )
    # every analysis before the first failing one is saved, as in one process
    assert saved == [name for name in saved if not name.startswith("ID ")]
    assert len(saved) == 7  # 2 cross-modal, 2 maps, 2 cross-checkpoint, 1 tuning change


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2"])
def test_bad_n_jobs(planted_store, n_jobs):
    with pytest.raises(ValueError, match="n_jobs must be"):
        analyze_store(planted_store, measures=["cka-linear"], n_jobs=n_jobs)
