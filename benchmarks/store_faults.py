"""Fault injection at every write of a small extraction, a checkpoint added to a complete store,
and a merge: the counts of outcomes per fault kind (kill, torn write, EIO, ENOSPC).

Compiles the LD_PRELOAD shim of tests/faults/ (needs Linux and gcc) and runs the harness with a
fault at every write (``--stride 1``); the test suite runs every 4th.

    python benchmarks/store_faults.py [--stride 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "faults"))
import _harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stride", type=int, default=1, help="fault every n-th write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shim = _harness.build_shim(Path(tmp))
        env = {**os.environ, "LD_PRELOAD": str(shim), "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(Path(_harness.__file__)), "--stride", str(args.stride)],
            check=True,
            env=env,
        )
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
