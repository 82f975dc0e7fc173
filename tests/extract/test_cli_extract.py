"""``geomalign extract``: tuned and base checkpoints into one store, from JSONL or COCO."""

from __future__ import annotations

import argparse
import json

import pytest

from geomalign.cli import extract as extract_cli
from geomalign.cli import main
from geomalign.cli._args import layer_list
from geomalign.store import ActivationStore


def _run(argv: list[str]) -> int:
    return main(["extract", *argv])


def test_model_and_base_into_one_store(llava_dir, llava_base_dir, pairs_file, tmp_path, capsys):
    out = tmp_path / "acts.h5"
    argv = [
        "--model",
        str(llava_dir),
        "--base",
        str(llava_base_dir),
        "--data",
        str(pairs_file),
        "--out",
        str(out),
        "--pooling",
        "mean,last",
        "--layers",
        "0,2-3",
        "--modalities",
        "image",
        "--batch-size",
        "4",
        "--store-dtype",
        "float16",
        "--no-progress",
    ]
    assert _run(argv) == 0
    printed = capsys.readouterr().out
    assert "tuned: " in printed
    assert "base: " in printed
    assert "6 samples run" in printed
    with ActivationStore(out) as store:
        assert sorted(store.views()) == [
            ("base", "image", "last"),
            ("base", "image", "mean"),
            ("tuned", "image", "last"),
            ("tuned", "image", "mean"),
        ]
        info = store.view_info("tuned", "image", "mean")
        assert info.layers == [0, 2, 3]
        assert info.dtype == "float16"
        assert info.complete
    assert _run(argv) == 0  # resumes: nothing left to run
    assert printed.replace("6 samples run", "0 samples run") == capsys.readouterr().out
    assert _run([*argv, "--overwrite"]) == 0
    assert "6 samples run" in capsys.readouterr().out


def test_coco_data_and_templates(llm_dir, pairs_file, tmp_path, capsys):
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    coco = {
        "images": [{"id": i, "file_name": r["image"]} for i, r in enumerate(rows)],
        "annotations": [
            {"id": 100 + i, "image_id": i, "caption": r["caption"]} for i, r in enumerate(rows)
        ],
    }
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    out = tmp_path / "acts.h5"
    argv = [
        "--model",
        str(llm_dir),
        "--data",
        str(tmp_path / "captions.json"),
        "--image-dir",
        str(pairs_file.parent),
        "--out",
        str(out),
        "--pooling",
        "last",
        "--layers",
        "-1",
        "--text-template",
        "Caption: {caption}",
        "--no-progress",
    ]
    assert _run(argv) == 0
    assert "model: " in capsys.readouterr().out
    with ActivationStore(out) as store:
        assert store.sample_ids == [str(i) for i in range(6)]
        assert store.checkpoints()["model"]["template"] == "Caption: {caption}"
        assert store.view_info("model", "text", "last").layers == [3]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pooling", "max"], "poolings must be distinct names"),
        (["--image-template", "{image}"], "an image template does not apply"),
        (["--data", "captions.json"], "a COCO-captions .json needs image_dir (--image-dir)"),
        (["--shard", "2/2"], "0 <= rank < world_size; got rank=2, world_size=2"),
    ],
)
def test_errors_are_reported(llm_dir, pairs_file, tmp_path, capsys, extra, message):
    argv = ["--model", str(llm_dir), "--data", str(pairs_file), "--out", str(tmp_path / "a.h5")]
    assert _run([*argv, "--no-progress", *extra]) == 1
    assert message in capsys.readouterr().err


def test_shards_then_merge(llm_dir, pairs_file, tmp_path, capsys):
    argv = ["--model", str(llm_dir), "--data", str(pairs_file), "--pooling", "last"]
    for rank in (0, 1):
        out = str(tmp_path / f"rank{rank}.h5")
        assert _run([*argv, "--out", out, "--shard", f"{rank}/2", "--no-progress"]) == 0
        assert "3 samples run; shard " + f"{rank}/2)" in capsys.readouterr().out
    shards = [str(tmp_path / f"rank{rank}.h5") for rank in (0, 1)]
    assert main(["merge", *shards, "--out", str(tmp_path / "acts.h5")]) == 0
    assert "model/text/last: complete" in capsys.readouterr().out


def test_shard_syntax():
    assert extract_cli._shard("3/8") == (3, 8)
    for text in ("3", "3/", "a/b", "1/2/3"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected RANK/WORLD_SIZE"):
            extract_cli._shard(text)


def test_layer_syntax():
    assert layer_list("all") == "all"
    assert layer_list("0,4-6,-1") == [0, 4, 5, 6, -1]
    with pytest.raises(argparse.ArgumentTypeError, match="expected 'all' or layer numbers"):
        layer_list("first")
