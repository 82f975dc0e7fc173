"""Subprocess of the resume tests: extract a tiny LLaVA into a store, optionally dying by SIGKILL.

Usage: python _extract_worker.py MODEL_DIR PAIRS_JSONL STORE KILL_AT_FLUSH   (0 = never)
The process kills itself at its KILL_AT_FLUSH-th HDF5 flush: between the rows of a batch and the
mask that marks them done, or between two batches.
"""

import sys
from pathlib import Path

from geomalign.data import load_folder
from geomalign.extract import ExtractionResult, extract

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _store_writer import kill_at_flush

POOLINGS = ["mean", "none", "random"]
BATCH_SIZE = 2


def run(model_dir: str | Path, pairs: str | Path, store: str | Path) -> ExtractionResult:
    """The worker's extraction, also run uninterrupted (and resumed) by the tests."""
    return extract(
        model_dir,
        load_folder(pairs),
        store,
        checkpoint_name="tuned",
        poolings=POOLINGS,
        batch_size=BATCH_SIZE,
        progress=False,
    )


if __name__ == "__main__":
    kill_at_flush(int(sys.argv[4]))
    run(sys.argv[1], sys.argv[2], sys.argv[3])
