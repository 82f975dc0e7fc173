"""Subprocess used by the resume tests: write a store in batches, optionally dying by SIGKILL.

Usage: python _store_writer.py PATH KILL_AT_FLUSH   (0 = never)
The data of sample i, layer l is a deterministic function of (i, l), so any run's result can be
compared with an uninterrupted one. :func:`kill_at_flush` also serves the extraction worker.
"""

import os
import signal
import sys

import h5py
import numpy as np

from geomalign.store import ActivationStore

N_SAMPLES, LAYERS, DIM, BATCH = 120, [0, 2, 5], 24, 16


def rows(samples: np.ndarray) -> np.ndarray:
    """Deterministic activations (n_layers, n, dim) for the given samples."""
    grid = samples[None, :, None] * 1000.0 + np.arange(DIM)[None, None, :]
    return np.stack([grid[0] + 0.25 * layer for layer in LAYERS]).astype(np.float32) / 997.0


def kill_at_flush(kill_at: int) -> list[int]:
    """Make this process kill itself (SIGKILL) at its ``kill_at``-th HDF5 flush (0 = never).

    Returns a one-element list holding the number of flushes so far.
    """
    real_flush = h5py.File.flush
    count = [0]

    def flush(self):
        count[0] += 1
        if count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real_flush(self)

    h5py.File.flush = flush
    return count


def main(path: str, kill_at: int) -> None:
    kill_at_flush(kill_at)
    ids = [f"s{i:04d}" for i in range(N_SAMPLES)]
    store = ActivationStore.create(path, ids, resume=True)
    store.add_checkpoint("tuned", model="toy", n_layers=6, hidden_size=DIM)
    for modality in ("image", "text"):
        store.create_view("tuned", modality, "mean", layers=LAYERS, dim=DIM, dtype="float32")
        todo = store.missing("tuned", modality, "mean")
        for start in range(0, todo.size, BATCH):
            batch = todo[start : start + BATCH]
            store.write("tuned", modality, "mean", batch, rows(batch) + (modality == "text"))
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
