"""Write and read throughput of the activation store against raw h5py on the same array.

Shape (33 layers, 10,000 samples, 4,096 dims) float16 (2.7 GB) by default. The store writes rows in
batches for all layers (as extraction does), validating, flushing and marking them done; raw h5py
writes the same batches into a plain (contiguous) dataset. A timed write starts after os.sync() and
ends after the next one (the data is on disk), so neither side is throttled by, or profits from,
dirty pages the other left in the page cache; the two sides alternate which goes first. Each side
first writes once untimed: the first pass over freshly mapped memory is several times slower on
virtual machines, and it would otherwise fall on whichever side happens to run first. Reads fetch
one whole layer at a time.

    python benchmarks/store_bench.py [--layers 33 --samples 10000 --dim 4096 --batch 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from geomalign.store import ActivationStore


def _write_raw(path: Path, batch: np.ndarray, n: int) -> float:
    layers, rows, dim = batch.shape
    path.unlink(missing_ok=True)
    os.sync()  # earlier runs' dirty pages must not throttle this one
    start = time.perf_counter()
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("data", shape=(layers, n, dim), dtype=batch.dtype)
        for lo in range(0, n, rows):
            hi = min(lo + rows, n)
            dset[:, lo:hi, :] = batch[:, : hi - lo]
    os.sync()
    return time.perf_counter() - start


def _write_store(path: Path, batch: np.ndarray, n: int) -> float:
    layers, rows, dim = batch.shape
    path.unlink(missing_ok=True)
    os.sync()  # earlier runs' dirty pages must not throttle this one
    start = time.perf_counter()
    with ActivationStore.create(path, [f"s{i}" for i in range(n)]) as store:
        store.add_checkpoint("bench", model="random")
        store.create_view(
            "bench", "image", "mean", layers=range(layers), dim=dim, dtype=str(batch.dtype)
        )
        for lo in range(0, n, rows):
            hi = min(lo + rows, n)
            store.write("bench", "image", "mean", np.arange(lo, hi), batch[:, : hi - lo])
    os.sync()
    return time.perf_counter() - start


def _read_raw(path: Path, layers: int) -> float:
    start = time.perf_counter()
    with h5py.File(path, "r") as f:
        for layer in range(layers):
            f["data"][layer].astype(np.float32)
    return time.perf_counter() - start


def _read_store(path: Path, layers: int) -> float:
    start = time.perf_counter()
    with ActivationStore(path) as store:
        for layer in range(layers):
            store.read("bench", "image", "mean", layer)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=33)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256, help="rows per write call")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((args.layers, args.batch, args.dim), dtype=np.float32)
    batch = batch.astype(np.float16)
    megabytes = args.layers * args.samples * args.dim * 2 / 1e6
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        raw, ours = Path(tmp) / "raw.h5", Path(tmp) / "store.h5"
        times = {"write": ([], []), "read": ([], [])}
        _write_raw(raw, batch, args.samples)  # warm-up, untimed
        _write_store(ours, batch, args.samples)
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both sides
            for side in (0, 1) if len(times["write"][0]) % 2 == 0 else (1, 0):
                write = _write_raw if side == 0 else _write_store
                times["write"][side].append(write(raw if side == 0 else ours, batch, args.samples))
            times["read"][0].append(_read_raw(raw, args.layers))
            times["read"][1].append(_read_store(ours, args.layers))
    print(
        f"store of {args.layers} layers x {args.samples} samples x {args.dim} dims float16 "
        f"({megabytes:,.0f} MB), write batches of {args.batch} rows, median of {args.repeats}"
    )
    print(f"{'operation':<10}{'raw h5py MB/s':>16}{'geomalign MB/s':>16}{'ratio':>8}")
    for op, (raw_t, ours_t) in times.items():
        raw_rate, our_rate = megabytes / np.median(raw_t), megabytes / np.median(ours_t)
        print(f"{op:<10}{raw_rate:>16,.0f}{our_rate:>16,.0f}{our_rate / raw_rate:>8.2f}")


if __name__ == "__main__":
    main()
