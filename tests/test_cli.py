import subprocess
import sys

import pytest

from geomalign.cli import COMMANDS, main


def test_help_lists_every_command_without_loading_torch():
    code = (
        "import sys; from geomalign.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("torch not loaded")
    for name in COMMANDS:
        assert f"\n    {name} " in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_its_full_parser_when_run(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: geomalign {name}")


def test_bad_input_is_one_line_on_stderr(tmp_path, capsys):
    missing = tmp_path / "missing.h5"
    assert main(["info", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err == f"geomalign info: error: {missing}: no such file.\n"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_existing_results_are_refused_in_one_line(tmp_path, capsys):
    existing = tmp_path / "results.csv"
    existing.write_text("kept\n")
    argv = [
        "analyze",
        str(tmp_path / "acts.h5"),
        "--measures",
        "cka-linear",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == f"geomalign analyze: error: {existing} exists; pass --overwrite to replace it.\n"
    assert existing.read_text() == "kept\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--small"],
        ["finetune", "--window", "2-3"],
        ["intervene", "curves", "--testbed", "small"],
        ["toy", "build"],
        ["toy", "eval"],
    ],
)
def test_device_is_checked_before_the_command_runs(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a command wrote would land here
    out = ["--out", str(tmp_path / "out")] if argv[0] != "toy" else []
    cache = ["--cache-dir", str(tmp_path / "cache")] if argv[0] == "toy" else []
    assert main([*argv, *out, *cache, "--device", "cuda:7"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--device 'cuda:7' is not available: this machine has" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_analyze_refuses_a_bad_number_of_jobs(value, tmp_path, capsys):
    argv = ["analyze", str(tmp_path / "acts.h5"), "--measures", "cka-linear"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", str(tmp_path / "out"), "--jobs", value])
    assert exit_.value.code == 2
    assert f"argument --jobs: expected a positive number or -1; got '{value}'" in (
        capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []
