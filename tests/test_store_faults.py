"""Faults at the writes of a small extraction: kill, torn write, EIO, full disk, then recovery.

The harness (tests/faults/_harness.py) runs under an LD_PRELOAD shim compiled here; this test
faults every 4th write of each scenario and kind, each kind starting at another write, so that
every write of the run is hit by some fault. ``benchmarks/store_faults.py`` runs all of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).parent / "faults" / "_harness.py"
sys.path.insert(0, str(HARNESS.parent))
import _harness  # noqa: E402

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which(os.environ.get("CC", "gcc")) is None,
    reason="needs Linux and a C compiler for the fault-injection shim",
)


def test_every_fault_ends_in_a_resumable_store_or_a_named_error(tmp_path):
    shim = _harness.build_shim(tmp_path)
    table_file = tmp_path / "table.json"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "LD_PRELOAD": str(shim), "PYTHONPATH": str(root)}
    subprocess.run(
        [sys.executable, str(HARNESS), "--stride", "4", "--json", str(table_file)],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    table = json.loads(table_file.read_text())
    assert set(table) == {"first", "second", "merge"}
    for scenario, rows in table.items():
        assert rows["writes"]["total"] >= 20, scenario  # the run really writes through the shim
        for kind in _harness.KINDS:
            assert sum(rows[kind].values()) >= rows["writes"]["total"] // 4, (scenario, kind)
            assert rows[kind] == {"recovered": sum(rows[kind].values())}, (scenario, kind)
