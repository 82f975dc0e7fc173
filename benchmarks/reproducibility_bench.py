"""Do the demo's conclusions survive another machine? The demo run under two thread counts.

Another thread count stands in for another CPU: it changes the floating-point rounding of
training, so the testbeds of every seed train to other models (other accuracies, other curves),
as on another machine. The demo (``geomalign demo``, 3 seeds per role) is run once per thread
count, each in its own process and folder, testbeds included (``--cache-dir`` inside it, so
nothing is reused from an earlier run unless ``--reuse`` is given). Then the conclusions across
seeds (:func:`geomalign.analysis.seed_conclusions`) of the two results tables are compared
conclusion by conclusion: two runs agree on a conclusion when its subject and claim are the same
(the claim carries no number that varies between equally valid models; the seeds' values beside
it do and are printed for reading).

Usage: python benchmarks/reproducibility_bench.py --out DIR [--threads 1 2] [--small] [--reuse]
       python benchmarks/reproducibility_bench.py --compare DIR_A DIR_B

The full demo takes about 14 minutes per run on a quiet 2-core machine; the two runs are
started together (one thread each plus ``--threads`` of the other: the figures do not depend on
the load, only the time does). Exit status 1 when a conclusion differs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from geomalign.analysis import ResultsTable, seed_conclusions


def run(out: Path, threads: list[int], *, small: bool, reuse: bool) -> list[Path]:
    """Run the demo once per thread count, concurrently; return the output folders."""
    folders, jobs = [], []
    for t in threads:
        folder = out / f"threads{t}"
        if reuse and (folder / "demo" / "results.csv").exists():
            folders.append(folder)
            continue
        argv = [sys.executable, "-m", "geomalign", "demo", "--out", str(folder / "demo")]
        argv += ["--cache-dir", str(folder / "cache"), "--threads", str(t)]
        argv += ["--small"] if small else []
        folder.mkdir(parents=True, exist_ok=True)
        log = (folder / "demo.log").open("w")
        jobs.append((folder, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), log))
    start = time.perf_counter()
    for folder, job, log in jobs:
        if job.wait():
            sys.exit(f"the demo in {folder} failed (exit {job.returncode}); see {log.name}")
        log.close()
        folders.append(folder)
    if jobs:
        print(f"{len(jobs)} demo runs in {time.perf_counter() - start:.0f} s wall")
    return sorted(folders, key=lambda f: threads.index(int(f.name.removeprefix("threads"))))


def compare(a: Path, b: Path) -> bool:
    """Print the conclusions of two demo runs side by side; True when all agree."""
    found = [_conclusions(d) for d in (a, b)]
    if len(found[0]) < 2:
        sys.exit(f"{a}: no roles of several seeds: nothing to compare")
    print(f"A = {a}\nB = {b}\n")
    same, total = 0, max(map(len, found))
    for i in range(total):
        x, y = (f[i] if i < len(f) else ("-", "-", "") for f in found)
        agree = x[:2] == y[:2]
        same += agree
        print(f"{'same' if agree else 'DIFFERENT'}: {x[0] if x[0] != '-' else y[0]}")
        for name, c in (("A", x), ("B", y)):
            print(f"    {name}: {c[1]}" + (f" ({c[2]})" if c[2] else ""))
    print(f"\n{same} of {total} conclusions the same")
    return same == total


def _conclusions(folder: Path) -> list[tuple[str, str, str]]:
    """(subject, claim, values) of a run: the accuracy gap, then the conclusions across seeds."""
    out = []
    summary = _file(folder, "summary.txt").read_text().splitlines()
    gap = next((line for line in summary if line.startswith("Tuned minus base accuracy")), None)
    if gap is not None:  # the demo's one line on accuracy: "<subject>: <claim> (<values>)."
        subject, _, rest = gap.partition(": ")
        claim, _, values = rest.rstrip(".").partition(" (")
        out.append((subject, claim, values.rstrip(")")))
    table = ResultsTable.from_csv(_file(folder, "results.csv"))
    out += [(c.subject, c.claim, c.values) for c in seed_conclusions(table)]
    return out


def _file(folder: Path, name: str) -> Path:
    for path in (folder / name, folder / "demo" / name):
        if path.exists():
            return path
    sys.exit(f"{folder}: no {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder of the runs")
    parser.add_argument("--threads", type=int, nargs=2, default=[1, 2])
    parser.add_argument("--small", action="store_true", help="small testbed (a quick check)")
    parser.add_argument("--reuse", action="store_true", help="keep runs already in --out")
    parser.add_argument("--compare", type=Path, nargs=2, help="compare two finished runs")
    args = parser.parse_args()
    if args.compare:
        folders = list(args.compare)
    elif args.out:
        folders = run(args.out, list(args.threads), small=args.small, reuse=args.reuse)
    else:
        parser.error("give --out DIR to run, or --compare DIR_A DIR_B")
    sys.exit(0 if compare(*folders) else 1)


if __name__ == "__main__":
    main()
