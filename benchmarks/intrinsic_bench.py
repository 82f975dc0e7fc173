"""TwoNN and GRIDE at N=20,000, D=1,024 (float32) against scikit-dimension and the X X^T floor.

Each case is timed in the same process as its reference, as the median of ``--repeats`` runs
(default 3):

- ``twonn`` (linear fit, 10% discarded) against scikit-dimension's ``TwoNN`` with the same
  settings: the estimates must agree, and ours should be at least 2x faster;
- ``twonn`` and ``gride_scaling`` (n1 = 1..32) against one float32 ``X @ X.T``, the product an
  exact neighbour search cannot avoid: the target is at most 1.3x of it.

Run ``python benchmarks/intrinsic_bench.py`` (``--quick`` for a small smoke run). Timings on a
shared machine are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from geomalign.metrics.intrinsic import gride_scaling, intrinsic_dimension


def _data(n: int, dim: int, latent: int, seed: int) -> np.ndarray:
    """A curved ``latent``-dimensional manifold in ``dim`` dimensions with a little noise."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, latent))
    hidden = np.tanh(Z @ rng.normal(size=(latent, 4 * latent)) / np.sqrt(latent))
    X = hidden @ rng.normal(size=(4 * latent, dim)) + 0.01 * rng.normal(size=(n, dim))
    return X.astype(np.float32)


def _timed(repeats: int, func, *args, **kwargs):
    """Median seconds over ``repeats`` calls, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _product(X: np.ndarray) -> float:
    T = torch.from_numpy(X)
    start = time.perf_counter()
    G = T @ T.T
    elapsed = time.perf_counter() - start
    del G
    return elapsed


def _skdim_twonn(X: np.ndarray) -> float:
    import skdim

    return float(skdim.id.TwoNN(discard_fraction=0.1).fit(X).dimension_)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=2,000, D=256 smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    args = parser.parse_args(argv)
    n, dim = (2_000, 256) if args.quick else (20_000, 1_024)
    X = _data(n, dim, latent=12, seed=0)
    print(f"N={n}, D={dim}, float32, torch threads={torch.get_num_threads()}")

    rows = []
    r = args.repeats
    t_product = statistics.median(_product(X) for _ in range(r))
    t_ours, ours = _timed(r, intrinsic_dimension, X, fit="linear")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-dimension's own deprecation noise
        t_skdim, theirs = _timed(r, _skdim_twonn, X)
    rows.append(
        ("twonn linear vs skdim TwoNN", t_ours, t_skdim, f"{ours.dimension:.6f} / {theirs:.6f}")
    )
    rows.append(("twonn linear vs X X^T", t_ours, t_product, f"{ours.dimension:.6f}"))
    t_ml, ml = _timed(r, intrinsic_dimension, X)
    rows.append(("twonn ml vs X X^T", t_ml, t_product, f"{ml.dimension:.6f}"))
    t_gride, curve = _timed(r, gride_scaling, X, range_max=64)
    dims = " ".join(f"{d:.3f}" for d in curve.dimensions)
    rows.append(("gride n1=1..32 vs X X^T", t_gride, t_product, dims))

    print(f"{'case':<30} {'ours s':>8} {'reference s':>12} {'ratio':>7}  estimates")
    for case, mine, ref, estimates in rows:
        print(f"{case:<30} {mine:8.2f} {ref:12.2f} {mine / ref:7.2f}  {estimates}")
    agree = abs(ours.dimension - theirs) <= 1e-4 * abs(theirs)
    print(f"TwoNN estimates agree to 1e-4: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
