"""Store layout changes: atomic transactions, partial files, readers across a change, bfloat16."""

from __future__ import annotations

import fcntl
import os

import numpy as np
import pytest
import torch

from geomalign.store import ActivationStore, NonFiniteRowsError, StoreError, merge_stores


def _store(path, n=6):
    store = ActivationStore.create(path, [f"s{i}" for i in range(n)])
    store.add_checkpoint("ck", model="toy")
    store.create_view("ck", "image", "mean", layers=[0, 1], dim=3, dtype="float32")
    return store


def _partials(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_a_failed_transaction_leaves_the_store_as_it_was(tmp_path):
    store = _store(tmp_path / "s.h5")
    store.write("ck", "image", "mean", [0, 1], np.ones((2, 2, 3)))

    def failing_change():
        with store.transaction():
            store.add_checkpoint("other", model="toy")
            store.create_view("other", "image", "mean", layers=[0], dim=3)
            assert ("other", "image", "mean") in store.views()  # visible inside the block
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_change()
    assert store.views() == [("ck", "image", "mean")]
    assert _partials(tmp_path) == []
    store.write("ck", "image", "mean", [2], np.full((2, 1, 3), 2.0))
    store.close()
    with ActivationStore(tmp_path / "s.h5") as reader:
        assert list(reader.checkpoints()) == ["ck"]
        np.testing.assert_array_equal(reader.missing("ck", "image", "mean"), [3, 4, 5])


def test_a_reader_keeps_a_consistent_file_across_a_layout_change(tmp_path):
    writer = _store(tmp_path / "s.h5")
    writer.write("ck", "image", "mean", [0], np.ones((2, 1, 3)))
    reader = ActivationStore(tmp_path / "s.h5")
    with writer.transaction():
        writer.add_checkpoint("base", model="toy")
        writer.create_view("base", "text", "last", layers=[0], dim=3)
    assert reader.views() == [("ck", "image", "mean")]  # the file it opened, intact
    np.testing.assert_array_equal(
        reader.read("ck", "image", "mean", 1, ids=["s0"]), np.ones((1, 3))
    )
    reader.close()
    writer.close()
    with ActivationStore(tmp_path / "s.h5") as again:
        assert sorted(again.views()) == [("base", "text", "last"), ("ck", "image", "mean")]


def test_stale_partials_are_removed_live_ones_kept(tmp_path):
    _store(tmp_path / "s.h5").close()
    stale = tmp_path / ".s.h5.0badf00d.partial"
    stale.write_bytes(b"left by a killed writer")
    live = tmp_path / ".s.h5.1234abcd.partial"
    live.write_bytes(b"being written")
    fd = os.open(live, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as its writer holds it
    try:
        with ActivationStore.create(
            tmp_path / "s.h5", [f"s{i}" for i in range(6)], resume=True
        ) as s:
            s.add_checkpoint("new", model="toy")  # a layout change cleans up first
        assert _partials(tmp_path) == [live.name]
    finally:
        os.close(fd)


def test_killed_merge_partials_are_removed_by_the_next_merge(tmp_path):
    store = _store(tmp_path / "a.h5")
    store.write("ck", "image", "mean", np.arange(6), np.ones((2, 6, 3)))
    store.close()
    (tmp_path / ".out.h5.deadbeef.partial").write_bytes(b"x" * 100)
    merge_stores([tmp_path / "a.h5"], out=tmp_path / "out.h5")
    assert _partials(tmp_path) == []
    with ActivationStore(tmp_path / "out.h5") as merged:
        assert merged.view_info("ck", "image", "mean").complete


def test_store_fails_at_creation_when_the_disk_is_full(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(StoreError, match=r"s\.h5: cannot create the store: .*No space left"):
        ActivationStore.create(tmp_path / "s.h5", ["a", "b"])
    assert list(tmp_path.iterdir()) == []


def test_bfloat16_views_are_lossless_and_read_as_float32(tmp_path):
    values = torch.randn(2, 5, 3).to(torch.bfloat16)
    with ActivationStore.create(tmp_path / "b.h5", [f"s{i}" for i in range(5)]) as store:
        store.add_checkpoint("ck", model="toy")
        info = store.create_view("ck", "image", "mean", layers=[0, 4], dim=3, dtype="bfloat16")
        assert info.dtype == "bfloat16"
        store.write("ck", "image", "mean", [0, 1, 2], values[:, :3])
        store.write("ck", "image", "mean", [3, 4], values[:, 3:].float().numpy())
        with pytest.raises(NonFiniteRowsError, match="after casting to bfloat16"):
            store.write("ck", "image", "mean", [0], np.full((2, 1, 3), 3.4e38, dtype=np.float32))
    with ActivationStore(tmp_path / "b.h5") as store:
        assert store.schema_version == 2
        got = store.read("ck", "image", "mean", 4)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, values[1].float().numpy())
        blocks = np.vstack(
            [b for _, b in store.iter_blocks("ck", "image", "mean", 0, block_rows=2)]
        )
        np.testing.assert_array_equal(blocks, values[0].float().numpy())
    merge_stores([tmp_path / "b.h5"], out=tmp_path / "m.h5")
    with ActivationStore(tmp_path / "m.h5") as merged:
        assert merged.view_info("ck", "image", "mean").dtype == "bfloat16"
        np.testing.assert_array_equal(
            merged.read("ck", "image", "mean", 4), values[1].float().numpy()
        )


def test_float32_rows_round_to_nearest_bfloat16(tmp_path):
    x = np.array([1.0 + 2**-8, 1.0 + 3 * 2**-8, -(1.0 + 2**-9), 1.0 + 2**-7], dtype=np.float32)
    expected = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    with ActivationStore.create(tmp_path / "r.h5", ["a"]) as store:
        store.add_checkpoint("ck", model="toy")
        store.create_view("ck", "text", "mean", layers=[0], dim=4, dtype="bfloat16")
        store.write("ck", "text", "mean", [0], x[None, None])
        np.testing.assert_array_equal(store.read("ck", "text", "mean", 0)[0], expected)
