"""Speed and memory of geomalign.metrics against references run in the same process.

Cases (issue "Metrics", speed targets):

- mutual k-NN, N=10,000, D=4,096, k=10, cosine: against the dense formulation (N x N
  similarity matrix, diagonal masked, full argsort, N x N masks) and against the floor of the
  two X X^T products that exact k-NN needs;
- mutual k-NN, N=100,000, D=4,096: completes, with peak memory under 6 GiB; run in a child
  process whose peak resident set size is read from ``resource.getrusage(RUSAGE_CHILDREN)``
  (the kernel's high-water mark, inputs included);
- linear CKA, N=50,000, D=4,096: one pair against its three products X^T X, Y^T Y, X^T Y;
- a layer x layer CKA map: the cost of one further pair once each layer's self-term is known,
  against one X^T Y product.

"peak MiB" for in-process cases is the largest resident set size seen by a thread sampling
/proc/self/statm every 5 ms while the call runs (inputs included). Times are medians over
``--repeats`` runs (default 3) of float32 CPU computations with torch's default threads, ours and
the reference alternating which goes first; on a shared machine they are noisy.

Usage: python benchmarks/metrics_bench.py [--quick] [--skip-large]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from geomalign.metrics import _neighbors, cka, mutual_knn
from geomalign.metrics._cka_terms import _feature_h, _feature_view

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def measure(func: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``func`` once; return (seconds, peak RSS MiB during the call, result)."""
    peak = [_rss_mib()]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        result = func()
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    return elapsed, max(peak[0], _rss_mib()), result


def compare(
    ours: Callable[[], Any], reference: Callable[[], Any], repeats: int
) -> tuple[float, float, float, float, Any, Any]:
    """Run both ``repeats`` times, alternating which goes first.

    Returns the median seconds of ours and of the reference, the peak RSS MiB of each (the
    largest over its runs), and the last result of each.
    """
    times: tuple[list[float], list[float]] = ([], [])
    peaks, results = [0.0, 0.0], [None, None]
    for repeat in range(repeats):
        for side in (0, 1) if repeat % 2 == 0 else (1, 0):
            elapsed, peak, results[side] = measure((ours, reference)[side])
            times[side].append(elapsed)
            peaks[side] = max(peaks[side], peak)
    return (
        statistics.median(times[0]),
        statistics.median(times[1]),
        peaks[0],
        peaks[1],
        results[0],
        results[1],
    )


def fresh_mutual_knn(X: torch.Tensor, Y: torch.Tensor, k: int) -> float:
    """``mutual_knn`` searching afresh: repeats of one search would find the last one's lists."""
    _neighbors._searches.clear()
    return mutual_knn(X, Y, k=k)


def dense_mutual_knn(X: torch.Tensor, Y: torch.Tensor, k: int) -> float:
    """The dense formulation: N x N similarities, masked diagonal, full argsort, N x N masks."""

    def neighbours(F: torch.Tensor) -> torch.Tensor:
        F = torch.nn.functional.normalize(F, dim=1)
        S = F @ F.T
        S.fill_diagonal_(-1e8)
        return S.argsort(dim=1, descending=True)[:, :k]

    n = X.shape[0]
    rows = torch.arange(n).unsqueeze(1)
    mask_x = torch.zeros(n, n)
    mask_x[rows, neighbours(X)] = 1.0
    mask_y = torch.zeros(n, n)
    mask_y[rows, neighbours(Y)] = 1.0
    return float(((mask_x * mask_y).sum(dim=1) / k).mean())


def two_gram_products(X: torch.Tensor, Y: torch.Tensor) -> None:
    for A in (X, Y):
        G = A @ A.T
        del G


def three_products(X: torch.Tensor, Y: torch.Tensor) -> None:
    for A, B in ((X, X), (Y, Y), (X, Y)):
        P = A.T @ B
        del P


def paired_views(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two related float32 views (a shared low-rank part plus noise), made in place."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    Y = torch.randn(n, d, generator=g)
    shared = torch.randn(n, 64, generator=g) @ torch.randn(64, d, generator=g)
    X.add_(shared)
    Y.mul_(0.5).add_(shared)
    return X, Y


def child_large_knn(n: int, d: int) -> None:
    """Entry point of the child process: mutual k-NN on two N x D float32 views."""
    X, Y = paired_views(n, d, seed=1)
    start = time.perf_counter()
    score = mutual_knn(X, Y, k=10)
    elapsed = time.perf_counter() - start
    sys.stdout.write(f"{elapsed:.3f} {score:.6f}\n")


def run_large_knn(n: int, d: int) -> tuple[float, float]:
    """Run the large k-NN case in a child; return (seconds, peak RSS MiB of the child)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child-knn", str(n), str(d)],
        check=True,
        capture_output=True,
        text=True,
    )
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return float(out.stdout.split()[0]), peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument(
        "--skip-large", action="store_true", help="skip the N=100,000 k-NN case (about 30 min)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="median of this many alternating runs per case"
    )
    parser.add_argument("--child-knn", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_knn:
        child_large_knn(*args.child_knn)
        return
    if args.quick:
        knn_n, knn_d, big_n, cka_n, cka_d = 2_000, 512, 20_000, 5_000, 512
    else:
        knn_n, knn_d, big_n, cka_n, cka_d = 10_000, 4_096, 100_000, 50_000, 4_096
    rows: list[tuple[str, float, str, float | None, float | None]] = []

    mutual_knn(*paired_views(300, 16, seed=9), k=5)  # warm up thread pools
    X, Y = paired_views(knn_n, knn_d, seed=0)
    t_ours, t_dense, peak_ours, peak_dense, ours, dense = compare(
        lambda: fresh_mutual_knn(X, Y, k=10), lambda: dense_mutual_knn(X, Y, 10), args.repeats
    )
    _, t_floor, _, _, _, _ = compare(lambda: None, lambda: two_gram_products(X, Y), args.repeats)
    case = f"mutual k-NN N={knn_n:,} D={knn_d:,} k=10"
    rows.append((case, t_ours, f"dense (score {dense:.4f})", t_dense, peak_ours))
    rows.append((case, t_ours, "2 x X X^T floor", t_floor, peak_ours))
    rows.append(("  (dense formulation peak MiB)", t_dense, "", None, peak_dense))
    if abs(ours - dense) > 1e-3:
        rows.append((f"  scores differ: ours {ours:.4f} dense {dense:.4f}", 0.0, "", None, None))
    del X, Y

    if not args.skip_large:
        t_big, peak_big = run_large_knn(big_n, knn_d)
        rows.append((f"mutual k-NN N={big_n:,} D={knn_d:,} (child)", t_big, "", None, peak_big))

    X, Y = paired_views(cka_n, cka_d, seed=2)
    t_cka, t_three, peak_cka, _, _, _ = compare(
        lambda: cka(X, Y), lambda: three_products(X, Y), args.repeats
    )
    rows.append((f"linear CKA N={cka_n:,} D={cka_d:,}", t_cka, "3 products", t_three, peak_cka))
    u, v = _feature_view(X, False), _feature_view(Y, False)
    t_pair, t_one, peak_pair, _, _, _ = compare(
        lambda: _feature_h(u, v), lambda: X.T @ Y, args.repeats
    )
    rows.append(("  layer map: one further pair", t_pair, "1 X^T Y", t_one, peak_pair))

    header = (
        f"{'case':44} {'ours s':>9} {'reference':>24} {'ref s':>9} {'ratio':>7} {'peak MiB':>9}"
    )
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads", header]
    for case, ours_s, ref, ref_s, peak in rows:
        ratio = f"{ours_s / ref_s:7.2f}" if ref_s else " " * 7
        ref_col = f"{ref_s:9.2f}" if ref_s is not None else " " * 9
        peak_col = f"{peak:9.0f}" if peak is not None else " " * 9
        lines.append(f"{case:44} {ours_s:9.2f} {ref:>24} {ref_col} {ratio} {peak_col}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
