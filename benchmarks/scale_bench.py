"""Scale: approximate k-NN recall and speed, peak memory at large N, streaming CKA against the disk.

Cases (issue "Analysis at the speed of its kernels", item 5):

- recall: on ``--recall-n`` rows (default 50,000), the k = 10 cosine neighbours of faiss's HNSW
  graph (the functions ``neighbors="faiss-hnsw"`` runs, at its defaults unless ``--hnsw-links``
  / ``--ef-construction`` / ``--ef-search`` say otherwise) against exact search; printed with
  the exact search's, the graph's and each search's wall and CPU seconds. Target recall >= 0.99.
- scale: in a child process (its peak resident set size read from
  ``resource.getrusage(RUSAGE_CHILDREN)``, inputs included), at ``--scale-n`` rows (default
  100,000): exact k-NN and TwoNN (its exact neighbour search) on one view. Target: peak under
  6 GiB (streaming CKA's peak is printed by the streaming case). ``--query-blocks q`` stops
  each exact search after q query blocks: its buffers are allocated before the first block,
  the widest, so the peak of a search of all blocks is reached there (run two values of q to
  check that it does not grow).
- streaming: exact linear CKA over every row of a store layer
  (:class:`~geomalign.metrics.StreamingLinearCKA` fed by ``ActivationStore.iter_blocks``, as
  ``compare_views`` does) against reading the same blocks with h5py alone. Target: >= 70% of the
  raw read speed.

Rows are a low-rank signal plus noise (float32), width ``--dim`` (default 4,096). On a shared
machine pass smaller sizes (the figures in the README say which were used).

Usage: python benchmarks/scale_bench.py [--dim 4096] [--recall-n 50000] [--scale-n 100000]
       [--stream-n 100000] [--cases recall,scale,streaming]
       [--hnsw-links 32] [--ef-construction 200] [--ef-search 64,128,256]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from geomalign.metrics import StreamingLinearCKA, _exact_search, intrinsic_dimension
from geomalign.metrics._faiss_search import (
    EF_CONSTRUCTION,
    EF_SEARCH,
    HNSW_LINKS,
    hnsw_index,
    search_index,
    without_self,
)
from geomalign.metrics._neighbors import knn
from geomalign.store import ActivationStore


def views(n: int, d: int, seed: int, count: int = 2) -> list[np.ndarray]:
    """``count`` paired views sharing a 32-dimensional signal, with independent noise (filled
    in blocks of rows, so that making them takes little memory besides the views)."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n, 32), dtype=np.float32)
    out = []
    for _ in range(count):
        mixing = rng.standard_normal((32, d), dtype=np.float32)
        V = np.empty((n, d), dtype=np.float32)
        for lo in range(0, n, 8192):
            block = rng.standard_normal((min(8192, n - lo), d), dtype=np.float32)
            V[lo : lo + len(block)] = signal[lo : lo + len(block)] @ mixing + 0.5 * block
        out.append(V)
    return out


def _timed(run: Callable[[], Any]) -> tuple[Any, float, float]:
    """``run()``, its wall seconds and its CPU seconds (all threads of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def recall(n: int, d: int, links: int, ef_construction: int, ef_searches: list[int]) -> None:
    """Recall of the HNSW candidates (the functions ``neighbors="faiss-hnsw"`` runs, on the
    same normalised rows) against exact k-NN, one graph searched at each beam width."""
    (X,) = views(n, d, seed=0, count=1)
    exact, t_exact, c_exact = _timed(lambda: knn(X, k=10, metric="cosine").indices)
    points = np.ascontiguousarray(X / np.linalg.norm(X, axis=1, keepdims=True))
    index, t_build, c_build = _timed(
        lambda: hnsw_index(points, "cosine", links=links, ef_construction=ef_construction)
    )
    head = f"recall  N={n:,} D={d:,} k=10 cosine"
    print(
        f"{head}: exact search {t_exact:.1f} s wall / {c_exact:.1f} s CPU; HNSW graph "
        f"(M={links}, efConstruction={ef_construction}) {t_build:.1f} s wall / {c_build:.1f} s CPU"
    )
    for ef in ef_searches:
        found, t_search, c_search = _timed(
            lambda ef=ef: search_index(index, points, 11, ef_search=ef)
        )
        approx = without_self(found)
        hits = sum(len(set(a) & set(b)) for a, b in zip(approx, exact, strict=True))
        total = t_build + t_search
        print(
            f"{head}: efSearch={index.hnsw.efSearch}: search {t_search:.1f} s wall / "
            f"{c_search:.1f} s CPU, "
            f"graph + search / exact {total / t_exact:.2f} (wall), "
            f"{(c_build + c_search) / c_exact:.2f} (CPU); recall {hits / exact.size:.4f} "
            "(target >= 0.99)"
        )


class _QueryBlocksDone(Exception):
    """Raised by the instrumented block product after the wanted number of query blocks."""


def _limit_query_blocks(blocks: int) -> None:
    """Stop exact searches after ``blocks`` query blocks (memory measurements: the block buffer
    is allocated before the first block and the first block is the widest, so the peak is
    reached there; the caller checks that it does not grow with the count)."""
    product = _exact_search.block_scores
    calls = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        if calls[0] == blocks:
            calls[0] = 0
            raise _QueryBlocksDone
        calls[0] += 1
        return product(*args, **kwargs)

    _exact_search.block_scores = counted  # type: ignore[assignment]


def child_scale(n: int, d: int, blocks: int) -> None:
    """Entry point of the child process: the large-N kernels, one after the other; exact
    searches stop after ``blocks`` query blocks (0: all)."""
    (X,) = views(n, d, seed=1, count=1)
    if blocks:
        _limit_query_blocks(blocks)
    for name, run in (
        ("exact k-NN (k=10, cosine)", lambda: float(knn(X, k=10, metric="cosine").distances[0, 0])),
        ("TwoNN (exact)", lambda: intrinsic_dimension(X, method="twonn").dimension),
    ):
        start = time.perf_counter()
        try:
            text = f"value {run():.4f}"
        except _QueryBlocksDone:
            text = f"stopped after {blocks} query block(s)"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sys.stdout.write(
            f"{name}: {time.perf_counter() - start:.1f} s, {text}, "
            f"peak RSS so far {peak:,.0f} MiB\n"
        )


def scale(n: int, d: int, blocks: int) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--child-scale", str(n), str(d), str(blocks)],
        check=True,
        capture_output=True,
        text=True,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    inputs = n * d * 4 / 2**20
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
                    (X,) = views(min(8192, n - lo), d, seed=seed + lo, count=1)
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"stream  peak RSS of this process so far {peak:,.0f} MiB (target < 6,144 MiB)")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child-scale":
        child_scale(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--recall-n", type=int, default=50_000)
    parser.add_argument("--scale-n", type=int, default=100_000)
    parser.add_argument("--stream-n", type=int, default=100_000)
    parser.add_argument("--cases", default="recall,scale,streaming")
    parser.add_argument(
        "--query-blocks",
        type=int,
        default=0,
        help="scale case: stop exact searches after this many query blocks (0: all)",
    )
    parser.add_argument("--hnsw-links", type=int, default=HNSW_LINKS, help="recall: HNSW M")
    parser.add_argument("--ef-construction", type=int, default=EF_CONSTRUCTION)
    parser.add_argument(
        "--ef-search",
        default=str(EF_SEARCH),
        help="recall: comma-separated beam widths, each searched in the same graph",
    )
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    if "recall" in cases:
        ef_searches = [int(ef) for ef in args.ef_search.split(",")]
        recall(args.recall_n, args.dim, args.hnsw_links, args.ef_construction, ef_searches)
    if "scale" in cases:
        scale(args.scale_n, args.dim, args.query_blocks)
    if "streaming" in cases:
        streaming(args.stream_n, args.dim)


if __name__ == "__main__":
    main()
