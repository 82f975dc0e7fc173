"""Activation store: round trip, resume after SIGKILL, live readers, and every bad-input error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from geomalign.cli import main
from geomalign.store import (
    ActivationStore,
    IncompleteRowsError,
    NonFiniteRowsError,
    StoreError,
    check_same_samples,
)

WRITER = Path(__file__).with_name("_store_writer.py")
sys.path.insert(0, str(WRITER.parent))
import _store_writer  # noqa: E402


def _new(path, n=10, **kwargs):
    store = ActivationStore.create(path, [f"id{i}" for i in range(n)], **kwargs)
    store.add_checkpoint("ck", model="toy", n_layers=3, hidden_size=4)
    store.create_view("ck", "image", "mean", layers=[0, 1, 3], dim=4, dtype="float32")
    return store


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_layers_ids_and_blocks(tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, 50, 6)).astype(np.float32)
    ids = [f"x{i}" for i in range(50)]
    with ActivationStore.create(
        tmp_path / "s.h5",
        ids,
        captions=[f"c{i}" for i in ids],
        labels={"shape": ["a", "b"] * 25, "n": np.arange(50)},
    ) as store:
        store.add_checkpoint("tuned", model="toy", revision="r1", n_layers=4, hidden_size=6)
        store.create_view("tuned", "image", "mean", layers=[0, 2, 4], dim=6, dtype=dtype)
        for start in range(0, 50, 7):  # uneven batches
            batch = np.arange(start, min(start + 7, 50))
            store.write("tuned", "image", "mean", batch, data[:, batch])
    tol = 1e-3 if dtype == "float16" else 0
    with ActivationStore(tmp_path / "s.h5") as store:
        assert store.sample_ids == ids
        assert store.captions[3] == "cx3"
        assert list(store.labels["shape"][:3]) == ["a", "b", "a"]
        np.testing.assert_array_equal(store.labels["n"], np.arange(50))
        info = store.view_info("tuned", "image", "mean")
        assert (info.layers, info.dim, info.dtype, info.complete) == ([0, 2, 4], 6, dtype, True)
        np.testing.assert_allclose(store.read("tuned", "image", "mean", 2), data[1], rtol=tol)
        picked = store.read("tuned", "image", "mean", 4, ids=["x9", "x2", "x40"])
        np.testing.assert_allclose(picked, data[2, [9, 2, 40]], rtol=tol)
        blocks = list(store.iter_blocks("tuned", "image", "mean", 0, block_rows=16))
        assert [b.stop - b.start for b, _ in blocks] == [16, 16, 16, 2]
        np.testing.assert_allclose(np.vstack([a for _, a in blocks]), data[0], rtol=tol)
        assert store.checkpoints()["tuned"]["revision"] == "r1"


def test_token_view_rows_follow_offsets(tmp_path):
    with ActivationStore.create(tmp_path / "t.h5", ["a", "b", "c"]) as store:
        store.add_checkpoint("ck", model="toy")
        store.create_view(
            "ck", "text", "none", layers=[1], dim=2, dtype="float32", tokens_per_sample=[2, 1, 3]
        )
        tokens = np.arange(12, dtype=np.float32).reshape(1, 6, 2)  # c's 3 rows, then a's 2 rows
        store.write("ck", "text", "none", [2, 0], tokens[:, :5])
        store.write("ck", "text", "none", [1], tokens[:, 5:])
        np.testing.assert_array_equal(store.row_offsets("ck", "text", "none"), [0, 2, 3, 6])
        np.testing.assert_array_equal(store.read("ck", "text", "none", 1, ids=["c"]), tokens[0, :3])
        np.testing.assert_array_equal(
            store.read("ck", "text", "none", 1, ids=["a", "b"]), tokens[0, 3:6]
        )


def _run_writer(path: Path, kill_at: int) -> int:
    return subprocess.run(
        [sys.executable, str(WRITER), str(path), str(kill_at)], check=False
    ).returncode


def _expected(modality: str) -> np.ndarray:
    return _store_writer.rows(np.arange(_store_writer.N_SAMPLES)) + (modality == "text")


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5, 6, 9, 14, 17, 22])
def test_resume_after_sigkill_writes_exactly_the_missing_rows(tmp_path, kill_at):
    path = tmp_path / "killed.h5"
    assert _run_writer(path, kill_at) == -9  # died by SIGKILL mid-run
    assert _run_writer(path, 0) == 0
    with ActivationStore(path) as store:
        for modality in ("image", "text"):
            assert store.view_info("tuned", modality, "mean").complete
            for li, layer in enumerate(_store_writer.LAYERS):
                got = store.read("tuned", modality, "mean", layer)
                np.testing.assert_array_equal(got, _expected(modality)[li])


def test_live_reader_follows_a_writer_in_another_process(tmp_path):
    path = tmp_path / "live.h5"
    assert _run_writer(path, 9) == -9
    with ActivationStore(path) as reader:
        before = reader.missing("tuned", "image", "mean").size
        assert before > 0
        assert _run_writer(path, 0) == 0  # the writer opens and finishes while we hold the file
        assert reader.missing("tuned", "image", "mean").size == 0
        np.testing.assert_array_equal(
            reader.read("tuned", "image", "mean", 5), _expected("image")[2]
        )


def test_resume_with_other_sample_ids_is_refused(tmp_path):
    _new(tmp_path / "s.h5").close()
    with pytest.raises(StoreError, match=r"row 3 is 'id3' in .*s\.h5 but 'other'"):
        ActivationStore.create(
            tmp_path / "s.h5",
            ["id0", "id1", "id2", "other"] + [f"id{i}" for i in range(4, 10)],
            resume=True,
        )
    with pytest.raises(StoreError, match="file exists; pass overwrite=True or resume=True"):
        ActivationStore.create(tmp_path / "s.h5", ["a"])


def test_check_same_samples_names_both_stores(tmp_path):
    a, b = _new(tmp_path / "a.h5"), _new(tmp_path / "b.h5", n=9)
    check_same_samples(a, a)
    with pytest.raises(StoreError, match=r"a\.h5 has 10, .*b\.h5 has 9"):
        check_same_samples(a, b)


def test_not_a_store_corrupt_and_newer_schema(tmp_path):
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(StoreError, match=r"text\.h5: not an HDF5 file"):
        ActivationStore(tmp_path / "text.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(StoreError, match=r"plain\.h5: not a geomalign store"):
        ActivationStore(tmp_path / "plain.h5")
    with pytest.raises(StoreError, match="no such file"):
        ActivationStore(tmp_path / "absent.h5")
    _new(tmp_path / "new.h5").close()
    with h5py.File(tmp_path / "new.h5", "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(StoreError, match="schema version 99 is newer than this library"):
        ActivationStore(tmp_path / "new.h5")


def test_truncated_file_is_reported(tmp_path):
    store = _new(tmp_path / "cut.h5", n=400)
    store.write("ck", "image", "mean", np.arange(400), np.ones((3, 400, 4)))
    store.close()
    raw = (tmp_path / "cut.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StoreError, match=r"cut\.h5.*truncated or corrupt"):
        ActivationStore(tmp_path / "cut.h5").read("ck", "image", "mean", 0)


def test_reading_unwritten_rows_names_them(tmp_path):
    store = _new(tmp_path / "s.h5")
    store.write("ck", "image", "mean", np.arange(8), np.zeros((3, 8, 4)))
    with pytest.raises(
        IncompleteRowsError, match=r"2 requested samples are not written yet: 'id8', 'id9'"
    ):
        store.read("ck", "image", "mean", 1)
    np.testing.assert_array_equal(
        store.read("ck", "image", "mean", 1, ids=["id7"]), np.zeros((1, 4))
    )


def test_non_finite_rows_name_sample_and_layer_and_lose_nothing(tmp_path):
    store = _new(tmp_path / "s.h5")
    store.write("ck", "image", "mean", [0, 1], np.ones((3, 2, 4)))
    bad = np.zeros((3, 3, 4))
    bad[2, 1, 0] = np.nan
    with pytest.raises(NonFiniteRowsError, match=r"\('id3', 3\).*nothing of this batch"):
        store.write("ck", "image", "mean", [2, 3, 4], bad)
    np.testing.assert_array_equal(store.missing("ck", "image", "mean"), np.arange(2, 10))
    np.testing.assert_array_equal(
        store.read("ck", "image", "mean", 3, ids=["id0", "id1"]), np.ones((2, 4))
    )
    store.create_view("ck", "text", "mean", layers=[0], dim=4, dtype="float16")
    with pytest.raises(NonFiniteRowsError, match="after casting to float16"):
        store.write("ck", "text", "mean", [5], np.full((1, 1, 4), 1e6))


@pytest.mark.parametrize(
    ("samples", "data", "message"),
    [
        ([0, 1], np.zeros((3, 3, 4)), r"shape \(3, 3, 4\), expected .* = \(3, 2, 4\)"),
        ([0, 1], np.zeros((3, 2, 5)), r"expected .* = \(3, 2, 4\)"),
        ([0, 1], np.zeros((3, 2, 4), dtype=np.int64), "must be floating point; got dtype int64"),
        ([0, 0], np.zeros((3, 2, 4)), "unique indices"),
        ([10], np.zeros((3, 1, 4)), r"unique indices in \[0, 10\)"),
        ([], np.zeros((3, 0, 4)), "non-empty 1-D integer array"),
    ],
)
def test_bad_writes_say_what_is_wrong(tmp_path, samples, data, message):
    store = _new(tmp_path / "s.h5")
    with pytest.raises(StoreError, match=message):
        store.write("ck", "image", "mean", samples, data)
    assert store.missing("ck", "image", "mean").size == 10


def test_views_and_checkpoints_are_idempotent_and_checked(tmp_path):
    store = _new(tmp_path / "s.h5")
    store.add_checkpoint("ck", model="toy", n_layers=3, hidden_size=4)
    store.create_view("ck", "image", "mean", layers=[0, 1, 3], dim=4, dtype="float32")
    with pytest.raises(
        StoreError,
        match=r"'ck' exists with other provenance \(model: stored 'toy', given 'other'\)",
    ):
        store.add_checkpoint("ck", model="other", n_layers=3, hidden_size=4)
    with pytest.raises(StoreError, match=r"exists with layers=\[0, 1, 3\].*got layers=\[0, 1\]"):
        store.create_view("ck", "image", "mean", layers=[0, 1], dim=4, dtype="float32")
    with pytest.raises(StoreError, match="add checkpoint 'nope' before its views"):
        store.create_view("nope", "image", "mean", layers=[0], dim=4)
    with pytest.raises(StoreError, match=r"has no layer 2; stored layers: \[0, 1, 3\]"):
        store.read("ck", "image", "mean", 2)
    with pytest.raises(StoreError, match=r"no view checkpoints/ck/text/mean; stored views are"):
        store.read("ck", "text", "mean", 0)
    store.close()
    with ActivationStore(tmp_path / "s.h5") as reader, pytest.raises(StoreError, match="read-only"):
        reader.add_checkpoint("x", model="y")


def test_info_command_prints_the_layout(tiny_store, capsys):
    assert main(["info", str(tiny_store)]) == 0
    out = capsys.readouterr().out
    assert "schema version 2" in out
    assert "samples: 40, with captions, labels: colour" in out
    assert "checkpoint tuned: " in out
    assert "model=toy/tuned" in out
    assert "image/mean: layers 0..2 (3), 40 rows x 8, float16, complete" in out


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("geomalign ")


def test_compressed_view_round_trips(tmp_path):
    data = np.random.default_rng(3).normal(size=(2, 30, 5)).astype(np.float32)
    with ActivationStore.create(tmp_path / "z.h5", [f"s{i}" for i in range(30)]) as store:
        store.add_checkpoint("ck", model="toy")
        store.create_view(
            "ck", "image", "mean", layers=[0, 1], dim=5, dtype="float32", compression="gzip"
        )
        for lo in range(0, 30, 4):
            rows = np.arange(lo, min(lo + 4, 30))
            store.write("ck", "image", "mean", rows, data[:, rows])
        np.testing.assert_array_equal(store.read("ck", "image", "mean", 1), data[1])
        with pytest.raises(StoreError, match="compression must be None or 'gzip'; got 'lzf'"):
            store.create_view("ck", "text", "mean", layers=[0], dim=5, compression="lzf")
