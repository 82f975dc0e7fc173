"""Subprocess of the resume tests: extract a tiny LLaVA into a store, optionally dying by SIGKILL.

Usage: python _extract_worker.py MODEL_DIR PAIRS_JSONL STORE KILL_AT_FLUSH   (0 = never)
The process kills itself at its KILL_AT_FLUSH-th HDF5 flush: between the rows of a batch and the
mask that marks them done, or between two batches.
"""

import os
import signal
import sys

import h5py

from geomalign.data import load_folder
from geomalign.extract import extract

POOLINGS = ["mean", "none", "random"]
BATCH_SIZE = 2


def main(model_dir: str, pairs: str, store: str, kill_at: int) -> None:
    real_flush = h5py.File.flush
    count = 0

    def flush(self):
        nonlocal count
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real_flush(self)

    h5py.File.flush = flush
    extract(
        model_dir,
        load_folder(pairs),
        store,
        checkpoint_name="tuned",
        poolings=POOLINGS,
        batch_size=BATCH_SIZE,
        progress=False,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
