"""Merging the stores of a sharded extraction: equal to one run, overlaps, partial runs, errors."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from geomalign.cli import main
from geomalign.store import ActivationStore, StoreError, merge_stores

N = 11  # split unevenly by 2 and 3 ranks
IDS = [f"s{i:02d}" for i in range(N)]
CAPTIONS = [f"caption {i}" for i in range(N)]
LABELS = {"kind": ["photo", "drawing"] * 5 + ["photo"], "size": np.arange(N) * 0.5}
PROVENANCE = {
    "base": {"model": "toy-base", "revision": "r1", "n_layers": 4, "hidden_size": 5},
    "tuned": {"model": "toy-tuned", "dtype": "float16", "n_layers": 4, "hidden_size": 5},
}
TOKENS = 1 + np.arange(N) % 3
# view -> (layers, dim, dtype, token view)
VIEWS = {
    ("base", "image", "mean"): ([0, 2, 3], 5, "float32", False),
    ("tuned", "image", "mean"): ([0, 2, 3], 5, "float16", False),
    ("tuned", "text", "none"): ([1, 3], 5, "float32", True),
}


def _rows(view, samples, shift=0.0):
    """Deterministic rows (n_layers, n_rows, dim) of ``samples`` in ``view``."""
    layers, dim, _, tokens = VIEWS[view]
    samples = np.asarray(samples)
    counts = TOKENS[samples] if tokens else np.ones_like(samples)
    owners = np.repeat(samples, counts)
    token = np.arange(owners.size) - np.repeat(np.cumsum(counts) - counts, counts)  # in sample
    grid = owners[:, None] * 10.0 + token[:, None] * 0.01 + np.arange(dim) / 7
    offset = sum(map(ord, "".join(view))) % 17
    return np.stack([grid + layer + offset for layer in layers]).astype(np.float32) + shift


def _write(path, samples, *, ids=IDS, provenance=PROVENANCE, views=VIEWS, shift=None):
    """A store of every sample with the rows of ``samples`` written (in batches of 4)."""
    samples = np.asarray(samples, dtype=np.int64)
    with ActivationStore.create(path, ids, captions=CAPTIONS, labels=LABELS) as store:
        for name, facts in provenance.items():
            store.add_checkpoint(name, **facts)
        for view, (layers, dim, dtype, tokens) in views.items():
            counts = TOKENS if tokens else None
            store.create_view(*view, layers=layers, dim=dim, dtype=dtype, tokens_per_sample=counts)
            for start in range(0, samples.size, 4):
                batch = samples[start : start + 4]
                data = _rows(view, batch, (shift or {}).get((view, int(batch[0])), 0.0))
                store.write(*view, batch, data)
    return path


def _contents(path):
    """Everything a store holds that a merge must keep: table, provenance, views, done rows."""
    with ActivationStore(path) as store:
        out = {
            "ids": store.sample_ids,
            "captions": store.captions,
            "labels": {k: v.tolist() for k, v in store.labels.items()},
            "checkpoints": {k: dict(v) for k, v in store.checkpoints().items()},
        }
        for view in store.views():
            info = store.view_info(*view)
            done = [store.sample_ids[i] for i in np.setdiff1d(range(N), store.missing(*view))]
            out[view] = (info, store.row_offsets(*view), done)
            for layer in info.layers:
                out[(*view, layer)] = store.read(*view, layer, ids=done, dtype=info.dtype)
        return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == b[key].dtype, key
            np.testing.assert_array_equal(value, b[key], err_msg=str(key))
        elif isinstance(value, tuple):
            np.testing.assert_array_equal(value[1], b[key][1])
            assert (value[0], value[2]) == (b[key][0], b[key][2]), key
        else:
            assert value == b[key], key


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return _contents(_write(tmp_path_factory.mktemp("single") / "all.h5", range(N)))


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("working_memory", [256, 0.0002])  # one block per view; 1-3 rows a block
def test_shards_merge_to_the_single_run_store(tmp_path, single, world_size, working_memory):
    shards = [
        _write(tmp_path / f"rank{r}.h5", share)
        for r, share in enumerate(np.array_split(np.arange(N), world_size))
    ]
    out = merge_stores(shards, out=tmp_path / "merged.h5", working_memory=working_memory)
    assert out == tmp_path / "merged.h5"
    _assert_same(_contents(out), single)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in shards), "merged.h5"]
    )  # no temporary file left


def test_overlapping_identical_rows_are_fine(tmp_path, single):
    a = _write(tmp_path / "a.h5", range(8))
    b = _write(tmp_path / "b.h5", range(3, N))
    _assert_same(_contents(merge_stores([a, b], out=tmp_path / "m.h5")), single)


@pytest.mark.parametrize("working_memory", [256, 0.0002])
def test_overlapping_different_rows_name_both_files_the_view_and_the_sample(
    tmp_path, working_memory
):
    a = _write(tmp_path / "a.h5", range(8))
    # batches of b start at samples 5 and 9: the second one (9, 10) differs, 5..8 agree
    b = _write(tmp_path / "b.h5", range(5, N), shift={(("tuned", "text", "none"), 9): 1.0})
    c = _write(tmp_path / "c.h5", range(7, N))
    message = f"{re.escape(str(b))} and {re.escape(str(c))}: view tuned/text/none: sample 's09'"
    with pytest.raises(StoreError, match=message):
        merge_stores([a, b, c], out=tmp_path / "m.h5", working_memory=working_memory)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5", "c.h5"]


def test_a_partial_merge_keeps_missing_rows_not_done(tmp_path, single, caplog):
    shares = np.array_split(np.arange(N), 3)
    shards = [_write(tmp_path / f"rank{r}.h5", shares[r]) for r in (0, 2)]
    with caplog.at_level(logging.WARNING, logger="geomalign.store"):
        out = merge_stores(shards, out=tmp_path / "m.h5")
    merged = _contents(out)
    missing = [IDS[i] for i in shares[1]]
    for view in VIEWS:
        info, _, done = merged[view]
        assert done == [i for i in IDS if i not in missing]
        assert info.n_done == N - len(missing)
        for layer in info.layers:
            expected = single[(*view, layer)]
            if info.tokens:
                keep = np.repeat(np.isin(IDS, done), TOKENS)
                expected = expected[keep]
            else:
                expected = expected[np.isin(IDS, done)]
            np.testing.assert_array_equal(merged[(*view, layer)], expected)
    assert f"4 of {N} samples are done in no input" in caplog.text
    with ActivationStore(out, mode="a") as store:  # a merged store resumes like any other
        view = ("base", "image", "mean")
        store.write(*view, shares[1], _rows(view, shares[1]))
        assert store.view_info(*view).complete


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"ids": [*IDS[:-1], "zz"]}, r"sample ids differ: row 10 is 's10' in .*a\.h5 but 'zz'"),
        (
            {"provenance": {**PROVENANCE, "base": {**PROVENANCE["base"], "revision": "r2"}}},
            r"b\.h5 \(against .*a\.h5\): checkpoint 'base' has other provenance: "
            r"\{'revision': 'r2'\} against \{'revision': 'r1'\}",
        ),
        (
            {"provenance": {"base": PROVENANCE["base"]}, "views": dict(list(VIEWS.items())[:1])},
            r"b\.h5 \(against .*a\.h5\): checkpoints \['base'\] differ from \['base', 'tuned'\]",
        ),
        (
            {"views": dict(list(VIEWS.items())[:2])},
            r"b\.h5 .*: other views: lacks \['tuned/text/none'\], has more \[\]",
        ),
        (
            {"views": {**VIEWS, ("tuned", "image", "mean"): ([0, 2, 3], 5, "float32", False)}},
            r"b\.h5 .*: view tuned/image/mean has layers=\[0, 2, 3\], dim=5, dtype=float32",
        ),
    ],
)
def test_inputs_that_do_not_match_are_named(tmp_path, other, message):
    a = _write(tmp_path / "a.h5", range(5))
    b = _write(tmp_path / "b.h5", range(5, N), **other)
    with pytest.raises(StoreError, match=message):
        merge_stores([a, b], out=tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]


def test_bad_arguments(tmp_path):
    a = _write(tmp_path / "a.h5", range(N))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match=r"junk\.h5: not an HDF5 file"):
        merge_stores([a, tmp_path / "junk.h5"], out=tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"a\.h5: given twice in paths"):
        merge_stores([a, tmp_path / "." / "a.h5"], out=tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"the output is one of the inputs"):
        merge_stores([a], out=a, overwrite=True)
    with pytest.raises(ValueError, match=r"paths is empty"):
        merge_stores([], out=tmp_path / "m.h5")
    with pytest.raises(TypeError, match=r"paths must be a sequence of store paths; got PosixPath"):
        merge_stores(a, out=tmp_path / "m.h5")
    with pytest.raises(StoreError, match=r"folder .*nowhere does not exist"):
        merge_stores([a], out=tmp_path / "nowhere" / "m.h5")
    (tmp_path / "m.h5").write_bytes(b"old")
    with pytest.raises(StoreError, match=r"m\.h5: file exists; pass overwrite=True"):
        merge_stores([a], out=tmp_path / "m.h5")
    assert (tmp_path / "m.h5").read_bytes() == b"old"
    merge_stores([a], out=tmp_path / "m.h5", overwrite=True)
    _assert_same(_contents(tmp_path / "m.h5"), _contents(a))


def test_cli_merges_and_reports(tmp_path, capsys):
    shares = np.array_split(np.arange(N), 3)
    shards = [str(_write(tmp_path / f"rank{r}.h5", shares[r])) for r in (0, 1)]
    out = tmp_path / "m.h5"
    assert main(["merge", *shards, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"2 stores -> {out} ({N} samples)" in printed
    assert "  base/image/mean: 8/11 samples done" in printed
    assert main(["merge", *shards, "--out", str(out)]) == 1
    assert "geomalign merge: error: " in capsys.readouterr().err
    assert (
        main(["merge", "--overwrite", *shards, str(tmp_path / "rank2.h5"), "--out", str(out)]) == 1
    )
    assert "rank2.h5: no such file" in capsys.readouterr().err
    _write(tmp_path / "rank2.h5", shares[2])
    assert (
        main(["merge", "--overwrite", *shards, str(tmp_path / "rank2.h5"), "--out", str(out)]) == 0
    )
    assert "  tuned/text/none: complete" in capsys.readouterr().out
