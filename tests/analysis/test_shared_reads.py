"""Layers read again within one analysis run come from the first read, unchanged."""

from __future__ import annotations

import numpy as np

from geomalign.analysis import Calibration, analyze_store
from geomalign.analysis._views import Rows, View, open_store, shared_reads
from geomalign.store import ActivationStore


def test_a_layer_read_again_is_the_first_read(planted_store, monkeypatch):
    store = open_store(planted_store)
    view = View("base", "image", "mean")
    reads = []
    read = ActivationStore.read
    monkeypatch.setattr(ActivationStore, "read", lambda *a, **k: reads.append(a) or read(*a, **k))
    with shared_reads():
        first = Rows(store, None, 0).read(view, 2)
        first[:] = 0.0  # a caller's rows are its own
        again = Rows(store, None, 0).read(view, 2)
        subsample = Rows(store, 10, 0).read(view, 2)  # other rows: read from the file
    assert len(reads) == 2
    np.testing.assert_array_equal(again, read(store, "base", "image", "mean", 2))
    assert subsample.shape[0] == 10
    with shared_reads(max_bytes=again.nbytes - 1):  # nothing fits: every read from the file
        Rows(store, None, 0).read(view, 2)
        Rows(store, None, 0).read(view, 2)
    assert len(reads) == 4


def test_analyze_store_reads_each_layer_once(planted_store, monkeypatch):
    reads = []
    read = ActivationStore.read
    monkeypatch.setattr(
        ActivationStore, "read", lambda *a, **k: reads.append(a[1:5]) or read(*a, **k)
    )
    analyze_store(planted_store, measures=["cka-linear", "id-twonn"], calibration=Calibration())
    assert len(reads) == len(set(reads)) == 4 * 6  # four views of layers 0..5
