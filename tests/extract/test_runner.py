"""The runner: resume after a kill, several checkpoints in one store, options and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geomalign.data import PairedDataset
from geomalign.extract import EncodedBatch, ModuleAdapter, extract
from geomalign.store import ActivationStore, StoreError, merge_stores

WORKER = Path(__file__).with_name("_extract_worker.py")


def _contents(path: Path) -> dict:
    with ActivationStore(path) as store:
        out = {}
        for ckpt, modality, pooling in store.views():
            info = store.view_info(ckpt, modality, pooling)
            assert info.complete
            for layer in info.layers:
                out[ckpt, modality, pooling, layer] = store.read(ckpt, modality, pooling, layer)
        return out


# With batches of 2: the store's creation and the transaction adding the checkpoint and its 6
# views = 3 flushes, then 2 per write (rows, done mask), 3 writes per batch. Flush 8 is the rows of
# the "random" view of the first image batch, whose "mean" and "none" rows are done: every image
# sample runs again (12 in all). Flush 29 is the done mask of the second text batch's "mean" rows:
# the image views and the first text batch are done (4 left).
KNOWN_KILLS = {2: {8: 12, 29: 4}}


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_resume_after_sigkill_equals_an_uninterrupted_run(
    llava_dir, pairs_file, tmp_path, batch_size
):
    """Killed at flushes from the first to the last, every resumed store equals the whole run.

    The worker forks every run from one process, so all share its settings (thread count
    included); rows done before the kill are never written again.
    """
    known = KNOWN_KILLS.get(batch_size, {})
    worker = [sys.executable, str(WORKER), str(llava_dir), str(pairs_file), str(tmp_path)]
    out = subprocess.run(
        [*worker, str(batch_size), "8", *map(str, known)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    reports = [json.loads(line) for line in out.splitlines()]
    assert len(reports) >= 8
    assert {r["kill_at"] for r in reports} >= {1, reports[0]["flushes"]}
    for report in reports:
        assert report["killed"], report
        assert report["resumed"], report
        assert report["rewritten"] == 0, report
        assert report["differing"] == [], report
        if report["kill_at"] in known:
            assert report["n_encoded"] == known[report["kill_at"]], report


def test_base_and_tuned_share_one_store(llava_dir, llava_base_dir, pairs, tmp_path):
    path = tmp_path / "acts.h5"
    options = {"poolings": ["mean", "last"], "layers": [0, 2, -1], "progress": False}
    tuned = extract(llava_dir, pairs, path, checkpoint_name="tuned", **options)
    base = extract(llava_base_dir, pairs, path, checkpoint_name="base", **options)
    assert tuned.n_encoded == base.n_encoded == 12
    assert base.layers == (0, 2, 3)
    with ActivationStore(path) as store:
        assert set(store.checkpoints()) == {"base", "tuned"}
        provenance = store.checkpoints()["base"]
        assert provenance["model"] == str(Path(llava_base_dir).resolve())
        assert provenance["n_layers"] == 4
        assert provenance["hidden_size"] == 64
        assert "USER: {image}" in provenance["template"]
        assert store.view_info("base", "image", "mean").layers == [0, 2, 3]
        assert list(store.labels["kind"]) == ["photo"] * 3 + ["drawing"] * 3
        assert not np.allclose(
            store.read("base", "image", "mean", 3), store.read("tuned", "image", "mean", 3)
        )
    again = extract(llava_dir, pairs, path, checkpoint_name="tuned", **options)
    assert again.n_encoded == 0  # complete: nothing runs
    with pytest.raises(StoreError, match=r"checkpoint 'tuned' exists with other provenance"):
        extract(llava_base_dir, pairs, path, checkpoint_name="tuned", **options)
    with pytest.raises(StoreError, match="file exists"):
        extract(llava_dir, pairs, path, checkpoint_name="other", resume=False, **options)


def test_a_new_pooling_runs_only_for_itself(llm_dir, pairs, tmp_path):
    path = tmp_path / "acts.h5"
    extract(llm_dir, pairs, path, checkpoint_name="llm", poolings="mean", progress=False)
    first = _contents(path)
    added = extract(
        llm_dir, pairs, path, checkpoint_name="llm", poolings=["mean", "last"], progress=False
    )
    assert added.n_encoded == len(pairs)
    after = _contents(path)
    for key, rows in first.items():
        np.testing.assert_array_equal(after[key], rows)
    assert ("llm", "text", "last", 3) in after


def test_shards_merged_equal_one_unsharded_run(llm_dir, pairs, tmp_path):
    # batches of 3 are the same samples with and without shards: equal to the last bit
    options = {
        "checkpoint_name": "m",
        "poolings": ["mean", "random", "none"],
        "batch_size": 3,
        "progress": False,
    }
    whole = extract(llm_dir, pairs, tmp_path / "whole.h5", **options)
    shards = [
        extract(llm_dir, pairs, tmp_path / f"rank{r}.h5", shard=(r, 2), **options) for r in (0, 1)
    ]
    assert [s.n_encoded for s in shards] == [3, 3]
    with ActivationStore(shards[1].store_path) as store:
        assert store.sample_ids == pairs.ids
        for view in store.views():
            np.testing.assert_array_equal(store.missing(*view), [0, 1, 2])  # rank 0's share
    again = extract(llm_dir, pairs, shards[1].store_path, shard=(1, 2), **options)
    assert again.n_encoded == 0  # a shard resumes on its own share
    merged = merge_stores([s.store_path for s in shards], out=tmp_path / "merged.h5")
    one, joined = _contents(whole.store_path), _contents(merged)
    assert joined.keys() == one.keys()
    for key, rows in one.items():
        np.testing.assert_array_equal(joined[key], rows, err_msg=str(key))
    with ActivationStore(merged) as a, ActivationStore(whole.store_path) as b:
        assert a.checkpoints() == b.checkpoints()
        assert (a.sample_ids, a.captions) == (b.sample_ids, b.captions)


def test_batch_size_and_store_dtype(llm_dir, pairs, tmp_path):
    one = extract(
        llm_dir, pairs, tmp_path / "a.h5", checkpoint_name="m", batch_size=1, progress=False
    )
    six = extract(
        llm_dir,
        pairs,
        tmp_path / "b.h5",
        checkpoint_name="m",
        batch_size=6,
        store_dtype="float16",
        progress=False,
    )
    a, b = _contents(one.store_path), _contents(six.store_path)
    with ActivationStore(six.store_path) as store:
        assert store.view_info("m", "text", "mean").dtype == "float16"
    for key, rows in a.items():
        np.testing.assert_allclose(b[key], rows, rtol=2e-3, atol=2e-3)


def test_random_pooling_depends_on_the_seed(llm_dir, pairs, tmp_path):
    rows = []
    for seed in (0, 0, 1):
        path = tmp_path / f"r{len(rows)}.h5"
        extract(
            llm_dir,
            pairs,
            path,
            checkpoint_name="m",
            poolings="random",
            layers=[2],
            random_state=seed,
            progress=False,
        )
        with ActivationStore(path) as store:
            rows.append(store.read("m", "text", "random", 2))
    np.testing.assert_array_equal(rows[0], rows[1])
    assert not np.array_equal(rows[0], rows[2])


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.block = torch.nn.Linear(4, 4)

    def forward(self, input_ids):
        return self.block(self.embed(input_ids))


def _toy_adapter(region_of_sample_1=True):
    def encode(modality, captions):
        ids = torch.tensor([[len(c) % 10, 1, 2] for c in captions])
        region = torch.ones_like(ids, dtype=torch.bool)
        if not region_of_sample_1:
            region[1] = False
        return EncodedBatch({"input_ids": ids}, torch.ones_like(ids), region)

    toy = _Toy()
    return ModuleAdapter(toy, [toy.embed, toy.block], encode, hidden_size=4)


def test_bad_arguments(llm_dir, pairs, tmp_path):
    path = tmp_path / "x.h5"
    adapter = _toy_adapter()
    cases = [
        ({"poolings": ["max"]}, ValueError, r"poolings must be distinct names among"),
        ({"poolings": ["mean", "mean"]}, ValueError, r"poolings must be distinct"),
        ({"modalities": ["image"]}, ValueError, r"encodes modalities \['text'\]; got 'image'"),
        ({"layers": [5]}, ValueError, r"layer 5 is out of range for a model with 2 layers"),
        ({"layers": "some"}, ValueError, r"layers must be 'all' or a sequence of ints"),
        ({"batch_size": 0}, ValueError, r"batch_size must be a positive int; got 0"),
        ({"store_dtype": "int8"}, ValueError, r"store_dtype must be 'float32', 'float16' or"),
        ({"random_state": -1}, ValueError, r"random_state must be a non-negative int"),
        ({"dtype": "float16"}, ValueError, r"\['dtype'\] apply only when model is an id or path"),
        ({"shard": (2, 2)}, ValueError, r"0 <= rank < world_size; got rank=2, world_size=2"),
        ({"shard": (0, 0)}, ValueError, r"world_size >= 1 .*; got rank=0, world_size=0"),
        ({"shard": (0, 2, 1)}, TypeError, r"shard must be a \(rank, world_size\) pair of ints"),
        ({"shard": "0/2"}, TypeError, r"shard must be a \(rank, world_size\) pair of ints"),
        ({"shard": (0, 2.0)}, TypeError, r"shard world_size must be an int; got 2.0"),
    ]
    for options, error, match in cases:
        with pytest.raises(error, match=match):
            extract(adapter, pairs, path, checkpoint_name="m", progress=False, **options)
    with pytest.raises(TypeError, match="dataset must be a PairedDataset; got list"):
        extract(adapter, list(pairs), path, checkpoint_name="m")
    with pytest.raises(TypeError, match="model must be an Adapter or a model id or path"):
        extract(42, pairs, path, checkpoint_name="m")


def test_a_sample_without_region_tokens_is_named(pairs, tmp_path):
    small = PairedDataset(pairs.ids[:2], pairs.captions[:2], pairs.image, source="two-pairs")
    adapter = _toy_adapter(region_of_sample_1=False)
    options = {"checkpoint_name": "m", "progress": False}
    with pytest.raises(ValueError, match=r"two-pairs: 1 samples have no caption tokens .*'p1'"):
        extract(adapter, small, tmp_path / "x.h5", poolings="mean", **options)
    extract(adapter, small, tmp_path / "y.h5", poolings="last", **options)  # "last" needs no region


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_extraction_matches_the_cpu(llava_dir, pairs, tmp_path):
    options = {"checkpoint_name": "m", "poolings": ["mean", "last"], "progress": False}
    extract(llava_dir, pairs, tmp_path / "cpu.h5", device="cpu", **options)
    extract(llava_dir, pairs, tmp_path / "gpu.h5", device="cuda", **options)
    cpu, gpu = _contents(tmp_path / "cpu.h5"), _contents(tmp_path / "gpu.h5")
    for key, rows in cpu.items():
        np.testing.assert_allclose(gpu[key], rows, rtol=1e-3, atol=1e-3, err_msg=str(key))
