"""Fault injection at every write of a small extraction-like run, and the check of its recovery.

Run under ``LD_PRELOAD=fault_shim.so`` (see :func:`build_shim`). For each scenario, one run counts
the writes the process makes under its folder; then, for each write number n (every ``stride``-th)
and each fault kind, a forked child runs the scenario with the fault armed at write n:

- ``kill``: SIGKILL just before write n;
- ``torn``: write n puts half of its bytes, then SIGKILL;
- ``eio``: write n fails with EIO (the process goes on);
- ``enospc``: write n and every later one fail with ENOSPC (a full disk).

A child that survives must end in an error naming the store file (never a traceback of another
kind, a crash, or a silent success). A second forked child then runs the scenario again without
faults (for ``enospc``: the space is free again), and must find a store that opens and resumes to
exactly the uninterrupted result, with no partial file left behind.

Scenarios: ``first`` creates a store and extracts one checkpoint (two views: float16 pooled and a
float32 token view) in batches; ``second`` adds a second checkpoint to a complete store; ``merge``
merges two shard stores.

    LD_PRELOAD=shim.so python tests/faults/_harness.py [--stride 1] [--json table.json]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

from geomalign.store import ActivationStore, StoreError, merge_stores

KINDS = {"kill": 1, "torn": 2, "eio": 3, "enospc": 4}
SCENARIOS = ("first", "second", "merge")
IDS = [f"s{i:02d}" for i in range(10)]
TOKENS = [1 + i % 3 for i in range(len(IDS))]
BATCH = 4
DIM = 6
LAYERS = [0, 2, 3]
SHIM = Path(__file__).with_name("fault_shim.c")


def build_shim(folder: Path) -> Path:
    """Compile the shim with the C compiler in ``folder``; return the shared library's path."""
    out = folder / "fault_shim.so"
    cc = os.environ.get("CC", "gcc")
    subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(SHIM), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out


def _rows(checkpoint: str, modality: str, n_rows: int, first_row: int) -> np.ndarray:
    """Deterministic rows (n_layers, n_rows, DIM) of a view, from the first row's number."""
    seed = sum(map(ord, checkpoint + modality))
    grid = (first_row + np.arange(n_rows))[None, :, None] * 10.0 + np.arange(DIM)[None, None, :]
    layers = np.asarray(LAYERS)[:, None, None]
    return ((grid + layers * 0.5 + seed) / 64.0).astype(np.float32)


def extract_like(path: Path, checkpoint: str, samples: np.ndarray | None = None) -> None:
    """Create (or resume) the store and write one checkpoint's views, as extraction does."""
    views = {("image", "mean"): None, ("text", "none"): TOKENS}
    with ActivationStore.create(
        path, IDS, captions=[f"caption {i}" for i in IDS], labels={"k": np.arange(10)}, resume=True
    ) as store:
        with store.transaction():
            store.add_checkpoint(checkpoint, model=f"toy/{checkpoint}", n_layers=3, hidden_size=DIM)
            for (modality, pooling), tokens in views.items():
                dtype = "float16" if tokens is None else "float32"
                store.create_view(
                    checkpoint, modality, pooling, layers=LAYERS, dim=DIM, dtype=dtype,
                    tokens_per_sample=tokens,
                )  # fmt: skip
        for modality, pooling in views:
            offsets = store.row_offsets(checkpoint, modality, pooling)
            todo = store.missing(checkpoint, modality, pooling)
            if samples is not None:
                todo = np.intersect1d(todo, samples)
            for start in range(0, todo.size, BATCH):
                batch = todo[start : start + BATCH]
                if offsets is None:
                    parts = [_rows(checkpoint, modality, 1, int(i)) for i in batch]
                else:
                    parts = [
                        _rows(
                            checkpoint, modality, int(offsets[i + 1] - offsets[i]), int(offsets[i])
                        )
                        for i in batch
                    ]
                store.write(checkpoint, modality, pooling, batch, np.concatenate(parts, axis=1))


def contents(path: Path) -> dict[str, object]:
    """Everything a store holds that a run determines, as plain values."""
    out: dict[str, object] = {}
    with ActivationStore(path) as store:
        out["ids"] = store.sample_ids
        out["captions"] = store.captions
        out["labels"] = {k: v.tolist() for k, v in store.labels.items()}
        out["checkpoints"] = {
            name: {k: str(v) for k, v in attrs.items()}
            for name, attrs in store.checkpoints().items()
        }
        for view in sorted(store.views()):
            info = store.view_info(*view)
            key = "/".join(view)
            out[key] = [info.layers, info.dim, info.dtype, info.n_done]
            for layer in info.layers:
                out[f"{key}/{layer}"] = store.read(*view, layer).tobytes().hex()
    return out


# ----------------------------------------------------------------------------------- scenarios
def _setup(scenario: str, folder: Path, seeds: Path) -> None:
    """Put the scenario's starting files (copies of prepared stores) into ``folder``."""
    if scenario == "second":
        shutil.copy(seeds / "complete.h5", folder / "acts.h5")
    elif scenario == "merge":
        shutil.copy(seeds / "shard0.h5", folder / "shard0.h5")
        shutil.copy(seeds / "shard1.h5", folder / "shard1.h5")


def _run(scenario: str, folder: Path) -> None:
    if scenario == "first":
        extract_like(folder / "acts.h5", "tuned")
    elif scenario == "second":
        extract_like(folder / "acts.h5", "base")
    elif not (folder / "merged.h5").exists():  # a merge that completed is not run again
        merge_stores([folder / "shard0.h5", folder / "shard1.h5"], out=folder / "merged.h5")


def _result(scenario: str, folder: Path) -> Path:
    return folder / ("merged.h5" if scenario == "merge" else "acts.h5")


def prepare(seeds: Path) -> dict[str, dict[str, object]]:
    """Write the starting stores and the uninterrupted result of each scenario."""
    extract_like(seeds / "complete.h5", "tuned")
    for rank, share in enumerate(np.array_split(np.arange(len(IDS)), 2)):
        extract_like(seeds / f"shard{rank}.h5", "tuned", samples=share)
    expected = {}
    for scenario in SCENARIOS:
        folder = seeds / f"whole-{scenario}"
        folder.mkdir()
        _setup(scenario, folder, seeds)
        _run(scenario, folder)
        expected[scenario] = contents(_result(scenario, folder))
    return expected


# -------------------------------------------------------------------------------------- faults
def _shim() -> ctypes.CDLL:
    lib = ctypes.CDLL(None)
    if not hasattr(lib, "fault_arm"):
        raise RuntimeError("run under LD_PRELOAD=fault_shim.so (see build_shim)")
    lib.fault_arm.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_long]
    lib.fault_count.restype = ctypes.c_long
    return lib


def _close_hdf5() -> None:
    """Shut the HDF5 library down as at the exit of a process (it flushes what is still open)."""
    gc.collect()
    libs = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()}
    for lib in sorted(p for p in libs if "/libhdf5-" in p or "/libhdf5.so" in p):
        ctypes.CDLL(lib).H5close()


def _in_child(job) -> int:
    """Run ``job()`` in a forked child; return its exit status (negative: killed by a signal).

    The child ends as a process does (the HDF5 library closed, so that a crash at exit shows)
    but without the parent's exit handlers, which would remove the parent's folders.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            code = job()
            _close_hdf5()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def count_writes(scenario: str, folder: Path, seeds: Path) -> int:
    lib = _shim()
    _setup(scenario, folder, seeds)
    lib.fault_arm(str(folder).encode(), 0, 0)
    _run(scenario, folder)
    n = lib.fault_count()
    lib.fault_arm(b"", 0, 0)
    return int(n)


# Exit codes of the faulty child: the run completed, or stopped with an error naming the store.
_COMPLETED, _NAMED, _UNNAMED = 0, 10, 11


def trial(scenario: str, kind: str, n: int, folder: Path, seeds: Path, expected) -> str:
    """One fault at write ``n``, then recovery; return the outcome's name."""
    _setup(scenario, folder, seeds)
    lib = _shim()

    def faulty() -> int:
        lib.fault_arm(str(folder).encode(), KINDS[kind], n)
        try:
            _run(scenario, folder)
        except (StoreError, OSError) as exc:
            return _NAMED if str(folder) in str(exc) else _UNNAMED
        return _COMPLETED

    status = _in_child(faulty)
    if status == _UNNAMED:
        return "error without the file name"
    if status not in (_COMPLETED, _NAMED, -9):
        return f"crashed ({status})"
    if status == _COMPLETED and kind in ("eio", "enospc"):
        return "error swallowed"

    def recover() -> int:
        _run(scenario, folder)
        if contents(_result(scenario, folder)) != expected:
            return 21
        if any(p.name.endswith(".partial") for p in folder.iterdir()):
            return 22
        return 0

    status = _in_child(recover)
    if status != 0:
        return {21: "resumed to other contents", 22: "partial file left"}.get(
            status, f"recovery failed ({status})"
        )
    return "recovered" if status == 0 else "?"


def sweep(stride: int, scenarios=SCENARIOS, kinds=tuple(KINDS)) -> dict[str, dict[str, Counter]]:
    """The outcome counts per scenario and fault kind."""
    table: dict[str, dict[str, Counter]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seeds = root / "seeds"
        seeds.mkdir()
        expected = prepare(seeds)
        for scenario in scenarios:
            counting = root / f"count-{scenario}"
            counting.mkdir()
            n_writes = count_writes(scenario, counting, seeds)
            table[scenario] = {"writes": Counter({"total": n_writes})}
            for k, kind in enumerate(kinds):
                outcomes: Counter = Counter()
                # with a stride, each kind starts at another write: together they hit every one
                for n in range(1 + k % stride, n_writes + 1, stride):
                    folder = root / f"{scenario}-{kind}-{n}"
                    folder.mkdir()
                    outcome = trial(scenario, kind, n, folder, seeds, expected[scenario])
                    outcomes[outcome] += 1
                    if outcome != "recovered":
                        print(f"{scenario} {kind} at write {n}: {outcome}", file=sys.stderr)
                    shutil.rmtree(folder)
                table[scenario][kind] = outcomes
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stride", type=int, default=1, help="fault every n-th write only")
    parser.add_argument("--json", type=Path, default=None, help="write the counts table here")
    args = parser.parse_args()
    table = sweep(args.stride)
    if args.json is not None:
        args.json.write_text(json.dumps(table))
    for scenario, rows in table.items():
        print(f"{scenario}: {rows['writes']['total']} writes")
        for kind in KINDS:
            print(f"  {kind:<7} {dict(rows[kind])}")


if __name__ == "__main__":
    main()
