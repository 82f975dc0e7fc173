"""End-to-end analysis time against the time spent in the measure kernels, in the same process.

``analyze_store`` runs on synthetic stores of 33 layers (embedding output and 32 blocks), two
checkpoints x image and text, mean pooling (four views), width ``--dim``, at each ``--sizes`` N;
measures ``cka-linear,mutual-knn,ot-sinkhorn,id-gride`` (the README's), the first as the layer-map
measure, and the ``geomalign analyze`` defaults for nulls and resamples (100 each) and subsampling
(2,000 rows). Every call of a registered measure's function, permutation helper, resampling
helper or layer-map matrix is timed (the outermost only), and so are the layer-map null and
half-sample maps of linear CKA; "kernels" is the time inside them and "ratio" is end-to-end over
that: what the analysis adds around its kernels (reading rows, resampling, notes, the table).
Under each row, the kernels' CPU seconds by measure and helper (value, shuffled, resampled). With
``--jobs J`` the analyses run in J worker processes (``n_jobs=J``) and only the wall time is
printed (the kernels then run, and are timed, in the workers).

Wall and CPU (``time.process_time``) seconds are both printed: on shared cores the wall time of
small inputs is dominated by waiting. Targets (issue "Analysis at the speed of its kernels"):
ratio <= 1.5 at every N, N = 40 under 10 s on 2 cores.

Usage: python benchmarks/analysis_bench.py [--sizes 40,400,2500] [--dim 128]
       [--permutations 100] [--resamples 100] [--measures ...] [--layers 33] [--jobs 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from geomalign import metrics
from geomalign.analysis import Calibration, analyze_store, layer_maps
from geomalign.metrics import _registry
from geomalign.store import ActivationStore


class KernelClock:
    """Wall and CPU seconds spent inside wrapped functions (nested calls counted once)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.calls = 0
        self.by_kernel: dict[str, float] = {}
        self._depth = 0

    def reset(self) -> None:
        self.wall = self.cpu = 0.0
        self.calls = 0
        self.by_kernel = {}

    def wrap(self, func: Callable[..., Any], key: str) -> Callable[..., Any]:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return func(*args, **kwargs)
            self._depth += 1
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return func(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - wall
                spent = time.process_time() - cpu
                self.cpu += spent
                self.by_kernel[key] = self.by_kernel.get(key, 0.0) + spent
                self.calls += 1
                self._depth -= 1

        return timed

    def wrap_factory(
        self, factory: Callable[..., Callable[..., Any]], key: str
    ) -> Callable[..., Any]:
        """Time a helper that returns a function (``shuffled``, ``resampled``) and the function
        it returns."""
        return self.wrap(lambda *a, **k: self.wrap(factory(*a, **k), key), key)


def instrument(clock: KernelClock) -> None:
    """Route every registered measure (and the CKA layer map) through ``clock``."""
    registry = _registry._registry()
    for name, m in list(registry.items()):
        changes: dict[str, Any] = {"func": clock.wrap(m.func, f"{name} value")}
        for field in ("shuffled", "resampled", "matrix"):
            helper = getattr(m, field, None)
            if helper is not None:
                key = f"{name} {field}"
                changes[field] = (
                    clock.wrap(helper, key)
                    if field == "matrix"
                    else clock.wrap_factory(helper, key)
                )
        registry[name] = dataclasses.replace(m, **changes)
    metrics.cka_matrix = clock.wrap(metrics.cka_matrix, "layer map")  # type: ignore[attr-defined]
    layer_maps.linear_cka_under_permutations = clock.wrap(
        layer_maps.linear_cka_under_permutations, "layer map null"
    )
    layer_maps.linear_cka_on_resamples = clock.wrap(
        layer_maps.linear_cka_on_resamples, "layer map resamples"
    )


def write_store(path: Path, n: int, n_layers: int, dim: int) -> None:
    """Four views whose layers drift from a shared signal, so that alignment varies by layer."""
    rng = np.random.default_rng(0)
    ids = [f"s{i:06d}" for i in range(n)]
    with ActivationStore.create(path, ids) as store:
        for ckpt in ("base", "tuned"):
            store.add_checkpoint(ckpt, model=f"bench/{ckpt}", n_layers=n_layers, hidden_size=dim)
            for modality in ("image", "text"):
                store.create_view(ckpt, modality, "mean", layers=list(range(n_layers)), dim=dim)
                signal = rng.standard_normal((n, dim), dtype=np.float32)
                for start in range(0, n, 4096):
                    stop = min(start + 4096, n)
                    data = np.stack(
                        [
                            signal[start:stop]
                            + (0.1 * layer) * rng.standard_normal((stop - start, dim))
                            for layer in range(n_layers)
                        ]
                    )
                    store.write(ckpt, modality, "mean", np.arange(start, stop), data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="40,400,2500")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=33)
    parser.add_argument("--measures", default="cka-linear,mutual-knn,ot-sinkhorn,id-gride")
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--resamples", type=int, default=100)
    parser.add_argument("--max-samples", type=int, default=2000)
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes (n_jobs); wall time only if not 1"
    )
    args = parser.parse_args()
    clock = KernelClock()
    instrument(clock)
    calibration = Calibration(
        n_permutations=args.permutations,
        n_resamples=args.resamples,
        max_samples=args.max_samples or None,
    )
    print(
        f"{args.layers} layers x 4 views, width {args.dim}, measures {args.measures}, "
        f"{args.permutations} permutations, {args.resamples} resamples"
    )
    header = f"{'N':>7} {'wall s':>9} {'cpu s':>9} {'kernel wall':>12} {'kernel cpu':>11}"
    print(f"{header} {'ratio wall':>11} {'ratio cpu':>10} {'calls':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"n{n}.h5"
            write_store(path, n, args.layers, args.dim)
            clock.reset()
            wall, cpu = time.perf_counter(), time.process_time()
            table = analyze_store(
                path, measures=args.measures.split(","), calibration=calibration, n_jobs=args.jobs
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert len(table) > 0
            if args.jobs != 1:  # the kernels ran in the workers: only the wall time is ours
                print(f"{n:>7} {wall:>9.2f}   (n_jobs={args.jobs}, wall only)", flush=True)
                path.unlink()
                continue
            print(
                f"{n:>7} {wall:>9.2f} {cpu:>9.2f} {clock.wall:>12.2f} {clock.cpu:>11.2f} "
                f"{wall / clock.wall:>11.2f} {cpu / clock.cpu:>10.2f} {clock.calls:>8}"
            )
            shares = sorted(clock.by_kernel.items(), key=lambda item: -item[1])
            print(
                "        kernel cpu s: "
                + ", ".join(f"{key} {spent:.1f}" for key, spent in shares if spent >= 0.05),
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
