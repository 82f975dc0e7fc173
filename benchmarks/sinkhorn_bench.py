"""CPU seconds of the Sinkhorn divergence's kernels at the size of an analysis (2,000 rows).

Four views of one layer as ``benchmarks/analysis_bench.py`` writes them (base/tuned x image/text,
each a Gaussian signal plus ``0.1 * layer`` times noise, width ``--dim``), or, with
``--clouds structured``, clouds sharing a low-rank signal (hundreds of Sinkhorn iterations).
Printed, in CPU seconds (``time.process_time``; on shared cores wall time mostly measures the
wait): the point value of ``ot-sinkhorn``, solved and then found again (kept full-sample
solutions); one bootstrap resample and one half-sample (the
means over ``--resamples`` of each, after the full-sample solve they start from); the
self-problems ``OT(X, X)`` of one bootstrap resample by the symmetric solver against the
alternating one, and their ratio (the same problems in the same process); and the OT of one
layer as ``analyze_store`` computes it, the point values and intervals of the cross-modal and
cross-checkpoint curves and the tuning change (``--resamples`` each), with the number of
entropic problems solved from scratch.

Usage: python benchmarks/sinkhorn_bench.py [--n 2000] [--dim 128] [--layer 1]
       [--resamples 20] [--clouds bench|structured] [--threads 0]
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from geomalign import metrics
from geomalign.analysis import Calibration
from geomalign.analysis.evaluation import evaluate, paired_difference
from geomalign.metrics import _ot_solvers, _sinkhorn_batch, ot
from geomalign.metrics._ot_solvers import cost_matrix
from geomalign.metrics._sinkhorn_full import SOLUTIONS
from geomalign.metrics._sinkhorn_symmetric import symmetric_stack
from geomalign.stats._resampling import drawn_resamples


def views(n: int, dim: int, layer: int, clouds: str) -> dict[str, np.ndarray]:
    """The four views of one layer, float32 as a store holds them."""
    rng = np.random.default_rng(0)
    out = {}
    for name in ("base image", "base text", "tuned image", "tuned text"):
        if clouds == "structured":
            signal = rng.normal(size=(n, 3)) @ rng.normal(size=(3, dim))
            noise = 0.2
        else:
            signal, noise = rng.standard_normal((n, dim)), 0.1 * layer
        out[name] = (signal + noise * rng.standard_normal((n, dim))).astype(np.float32)
    return out


def cpu(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    result = func()
    return time.process_time() - start, result


class ColdSolves:
    """Counts the entropic problems solved from zero potentials: by POT (one problem a call)
    and by the stacked solvers (one a cost matrix of the stack)."""

    def __init__(self) -> None:
        self.count = 0
        for name in ("sinkhorn_stack", "symmetric_stack"):
            setattr(_sinkhorn_batch, name, self._wrap(getattr(_sinkhorn_batch, name)))
        pot = _ot_solvers.entropic_terms

        def counted_pot(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return pot(*args, **kwargs)

        _ot_solvers.entropic_terms = counted_pot

    def _wrap(self, solver: Callable[..., Any]) -> Callable[..., Any]:
        def counted(M: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("warm") is None:
                self.count += M.shape[0]
            return solver(M, *args, **kwargs)

        return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--resamples", type=int, default=20)
    parser.add_argument("--clouds", choices=("bench", "structured"), default="bench")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as set)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = views(args.n, args.dim, args.layer, args.clouds)
    X, Y = data["base image"], data["base text"]
    print(
        f"n={args.n}, width {args.dim}, {args.clouds} clouds (layer {args.layer}), "
        f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.2f}"
    )
    SOLUTIONS.clear()
    seconds, _ = cpu(lambda: metrics.ot_distance(X, Y, method="sinkhorn"))
    print(f"point value                 {seconds:8.3f} cpu s")
    seconds, _ = cpu(lambda: metrics.ot_distance(X, Y, method="sinkhorn"))
    print(f"point value, kept           {seconds:8.3f} cpu s")
    at = ot.resampled_ot_distance(X, Y, method="sinkhorn")
    for scheme in ("bootstrap", "half-sampling"):
        drawn = drawn_resamples(args.n, args.resamples, scheme=scheme, random_state=0)
        wall = time.perf_counter()
        seconds, _ = cpu(functools.partial(at, drawn))
        wall = time.perf_counter() - wall
        print(
            f"one {scheme:<13} resample {seconds / args.resamples:8.3f} cpu s "
            f"({wall / args.resamples:.3f} wall)"
        )

    # the self-problems of one bootstrap resample, symmetric against alternating updates
    dev = torch.device("cpu")
    rows = np.unique(drawn_resamples(args.n, 1, scheme="bootstrap", random_state=0)[0])
    own = torch.stack([torch.from_numpy(cost_matrix(V[rows], V[rows], 2.0, dev)) for V in (X, Y)])
    eps = 0.05 * torch.from_numpy(cost_matrix(X[rows], Y[rows], 2.0, dev)).mean().repeat(2)
    alternating, _ = cpu(lambda: _sinkhorn_batch.sinkhorn_stack(own, eps, max_iter=None))
    symmetric, _ = cpu(lambda: symmetric_stack(own, eps, max_iter=None))
    print(
        f"self-problems, cold         {symmetric:8.3f} cpu s symmetric, {alternating:.3f} "
        f"alternating ({alternating / symmetric:.1f}x)"
    )

    # one layer's OT as analyze_store computes it
    measure = metrics.get("ot-sinkhorn")
    calibration = Calibration(n_permutations=100, n_resamples=args.resamples)
    cold = ColdSolves()
    SOLUTIONS.clear()
    start = time.process_time()
    pairs = [("base image", "base text"), ("tuned image", "tuned text"),
             ("base image", "tuned image"), ("base text", "tuned text")]  # fmt: skip
    for a, b in pairs:
        evaluate(measure, data[a], data[b], calibration)
    paired_difference(
        measure,
        (data["tuned image"], data["tuned text"]),
        (data["base image"], data["base text"]),
        calibration,
    )
    seconds = time.process_time() - start
    print(
        f"one layer, {args.resamples} resamples  {seconds:8.3f} cpu s, {cold.count} entropic "
        "problems solved from scratch"
    )


if __name__ == "__main__":
    main()
