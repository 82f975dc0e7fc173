"""Scale: approximate k-NN recall and speed, peak memory at large N, streaming CKA against the disk.

Cases (issue "Analysis at the speed of its kernels", item 5):

- recall: on ``--recall-n`` rows (default 50,000), the k = 10 cosine neighbours of faiss's HNSW
  graph (``neighbors="faiss-hnsw"``) against exact search; printed with both times. Target
  recall >= 0.99.
- scale: in a child process (its peak resident set size read from
  ``resource.getrusage(RUSAGE_CHILDREN)``, inputs included), at ``--scale-n`` rows (default
  100,000): mutual k-NN through HNSW, TwoNN and the intrinsic-dimension neighbour search (exact),
  and linear CKA of two views. Target: peak under 6 GiB.
- streaming: exact linear CKA over every row of a store layer
  (:class:`~geomalign.metrics.StreamingLinearCKA` fed by ``ActivationStore.iter_blocks``, as
  ``compare_views`` does) against reading the same blocks with h5py alone. Target: >= 70% of the
  raw read speed.

Rows are a low-rank signal plus noise (float32), width ``--dim`` (default 4,096). On a shared
machine pass smaller sizes (the figures in the README say which were used).

Usage: python benchmarks/scale_bench.py [--dim 4096] [--recall-n 50000] [--scale-n 100000]
       [--stream-n 100000] [--cases recall,scale,streaming]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from geomalign.metrics import StreamingLinearCKA, cka, intrinsic_dimension, mutual_knn
from geomalign.metrics._neighbors import knn
from geomalign.store import ActivationStore


def views(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two paired views sharing a 32-dimensional signal, with independent noise."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n, 32), dtype=np.float32)
    out = []
    for _ in range(2):
        mixing = rng.standard_normal((32, d), dtype=np.float32)
        out.append(signal @ mixing + 0.5 * rng.standard_normal((n, d), dtype=np.float32))
    return out[0], out[1]


def recall(n: int, d: int) -> None:
    X, _ = views(n, d, seed=0)
    start = time.perf_counter()
    exact = knn(X, k=10, metric="cosine")
    t_exact = time.perf_counter() - start
    start = time.perf_counter()
    approx = knn(X, k=10, metric="cosine", neighbors="faiss-hnsw")
    t_approx = time.perf_counter() - start
    hits = sum(len(set(a) & set(b)) for a, b in zip(approx.indices, exact.indices, strict=True))
    print(
        f"recall  N={n:,} D={d:,} k=10 cosine: exact {t_exact:.1f} s, HNSW {t_approx:.1f} s "
        f"(ratio {t_approx / t_exact:.2f}), recall {hits / exact.indices.size:.4f} (target >= 0.99)"
    )


def child_scale(n: int, d: int) -> None:
    """Entry point of the child process: the large-N kernels, one after the other."""
    X, Y = views(n, d, seed=1)
    for name, run in (
        ("mutual k-NN (HNSW)", lambda: mutual_knn(X, Y, k=10, neighbors="faiss-hnsw")),
        ("TwoNN (exact)", lambda: intrinsic_dimension(X, method="twonn").dimension),
        ("linear CKA", lambda: cka(X, Y)),
    ):
        start = time.perf_counter()
        value = run()
        sys.stdout.write(f"{name}: {time.perf_counter() - start:.1f} s, value {value:.4f}\n")


def scale(n: int, d: int) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--child-scale", str(n), str(d)],
        check=True,
        capture_output=True,
        text=True,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    inputs = 2 * n * d * 4 / 2**20
    for line in out.stdout.splitlines():
        print(f"scale   N={n:,} D={d:,} {line}")
    print(f"scale   peak RSS {peak:,.0f} MiB (inputs {inputs:,.0f} MiB; target < 6,144 MiB)")


def streaming(n: int, d: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.h5"
        with ActivationStore.create(path, [f"s{i}" for i in range(n)]) as store:
            store.add_checkpoint("m", model="bench/m", n_layers=0, hidden_size=d)
            for modality, seed in (("image", 2), ("text", 3)):
                store.create_view("m", modality, "mean", layers=[0], dim=d, dtype="float16")
                for lo in range(0, n, 8192):
                    X, _ = views(min(8192, n - lo), d, seed=seed + lo)
                    store.write("m", modality, "mean", np.arange(lo, lo + len(X)), X[None])
        block = max(1, 256 * 2**20 // (4 * 2 * d))
        start = time.perf_counter()
        with h5py.File(path, "r") as f:
            for modality in ("image", "text"):
                dset = f[f"checkpoints/m/{modality}/mean/data"]
                for lo in range(0, n, block):
                    dset[0, lo : lo + block, :].astype(np.float32)
        raw = time.perf_counter() - start
        store = ActivationStore(path)
        start = time.perf_counter()
        acc = StreamingLinearCKA()
        blocks = zip(
            store.iter_blocks("m", "image", "mean", 0, block_rows=block),
            store.iter_blocks("m", "text", "mean", 0, block_rows=block),
            strict=True,
        )
        for (_, xa), (_, xb) in blocks:
            acc.update(xa, xb)
        value = acc.value()
        ours = time.perf_counter() - start
    gib = 2 * n * d * 2 / 2**30
    print(
        f"stream  N={n:,} D={d:,} float16 ({gib:.2f} GiB): raw h5py read {raw:.1f} s "
        f"({gib / raw:.2f} GiB/s), streaming CKA {ours:.1f} s ({gib / ours:.2f} GiB/s, "
        f"{raw / ours:.0%} of the read speed; target >= 70%), CKA {value:.4f}"
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child-scale":
        child_scale(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--recall-n", type=int, default=50_000)
    parser.add_argument("--scale-n", type=int, default=100_000)
    parser.add_argument("--stream-n", type=int, default=100_000)
    parser.add_argument("--cases", default="recall,scale,streaming")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    if "recall" in cases:
        recall(args.recall_n, args.dim)
    if "scale" in cases:
        scale(args.scale_n, args.dim)
    if "streaming" in cases:
        streaming(args.stream_n, args.dim)


if __name__ == "__main__":
    main()
