"""The CLI checks options before any model loads or any computation starts; errors in CLI terms."""

from __future__ import annotations

import re

import pytest

from geomalign.cli import main
from geomalign.store import merge_stores


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "nonsense"], "device must be a torch device such as 'cpu'.* got 'nonsense'"),
        (["--device", "cuda:7"], "device 'cuda:7' is not available: this machine has"),
        (["--batch-size", "0"], "batch_size must be a positive int; got 0"),
        (["--pooling", "max"], "poolings must be distinct names"),
    ],
)
def test_extract_options_are_checked_before_the_model_loads(
    pairs_file, tmp_path, capsys, extra, message
):
    # the model does not exist: an error about it would mean it was looked for first
    argv = ["extract", "--model", str(tmp_path / "no-model"), "--data", str(pairs_file)]
    assert main([*argv, "--out", str(tmp_path / "s.h5"), *extra]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "s.h5").exists()


def test_analyze_out_naming_a_file_fails_before_computing(tiny_store, tmp_path, capsys):
    (tmp_path / "results").write_text("not a folder")
    argv = [
        "analyze",
        str(tiny_store),
        "--measures",
        "cka-linear",
        "--out",
        str(tmp_path / "results"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "is a file; give a folder" in err
    assert err.count("\n") == 1


def test_merge_into_an_existing_file_speaks_cli(tiny_store, tmp_path, capsys):
    out = tmp_path / "merged.h5"
    merge_stores([tiny_store], out=out)
    assert main(["merge", str(tiny_store), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "pass --overwrite to replace it" in err
    assert "overwrite=True" not in err
    assert main(["merge", str(tiny_store), "--out", str(out), "--overwrite"]) == 0
