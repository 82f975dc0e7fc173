"""``geomalign finetune --model``: one process, equal-step comparisons, and DDP under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from geomalign.analysis import ResultsTable
from geomalign.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _argv(llava_dir, instruct_file, out, *extra):
    return [
        "finetune", "--model", str(llava_dir), "--data", str(instruct_file), "--out", str(out),
        "--steps", "4", "--lr", "5e-3", "--device", "cpu", *extra,
    ]  # fmt: skip


def test_compare_writes_table_and_figure(instruct_llava_dir, instruct_file, tmp_path, capsys):
    pytest.importorskip("peft")
    out = tmp_path / "runs"
    argv = _argv(
        instruct_llava_dir, instruct_file, out, "--window", "1-2", "--eval-data",
        str(instruct_file), "--compare", "full,window,lora-window,late", "--lora-rank", "2",
    )  # fmt: skip
    assert main(argv) == 0
    table = ResultsTable.from_csv(out / "results.csv")
    assert table.unique("checkpoint") == ["full", "window", "lora-window", "late"]
    share = {r.checkpoint: r.value for r in table.select(measure="trainable_share")}
    assert share["full"] > share["window"] > share["lora-window"] > 0
    late = table.select(checkpoint="late", measure="n_trainable")[0]
    assert (late.layer, late.layer_b) == (3, 4)  # blocks 2-3 produce layers 3-4
    assert table.select(measure="exact_match", statistic="before")
    assert (out / "finetune.png").stat().st_size > 0
    assert (out / "window-seed0" / "final" / "model.safetensors").exists()
    assert "lora-window" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--window", "2-9"], "the model has 4 decoder blocks"),
        (["--window", "auto"], "--window auto needs --from"),
        (["--window", "1-2", "--compare", "full,middle"], "--compare takes kinds among"),
        (["--window", "1-2", "--compare", "full,window"], "--eval-data"),
    ],
)
def test_bad_options_fail_in_one_line(
    instruct_llava_dir, instruct_file, tmp_path, capsys, extra, message
):
    assert main(_argv(instruct_llava_dir, instruct_file, tmp_path / "o", *extra)) == 1
    err = capsys.readouterr().err.strip()
    assert message in err
    assert "\n" not in err


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(instruct_llava_dir, instruct_file, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, batch 2 each) = 1 process with batch 4, to 1e-5."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    common = ["--window", "1-2"]
    one = _argv(instruct_llava_dir, instruct_file, tmp_path / "one", *common, "--batch-size", "4")
    two = _argv(instruct_llava_dir, instruct_file, tmp_path / "two", *common, "--batch-size", "2")
    assert main(one) == 0
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    subprocess.run([*ddp, "-m", "geomalign", *two], env=env, check=True, capture_output=True)
    start = load_file(instruct_llava_dir / "model.safetensors")
    final = "window-seed0/final/model.safetensors"
    weights = [load_file(tmp_path / run / final) for run in ("one", "two")]
    moved = max(float((weights[0][k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-3  # the runs trained
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=1e-5, msg=key)
