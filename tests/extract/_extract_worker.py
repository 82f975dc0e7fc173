"""Subprocess of the resume tests: extract a tiny LLaVA into stores killed by SIGKILL and resumed.

Usage: python _extract_worker.py MODEL_DIR PAIRS_JSONL OUT_DIR BATCH_SIZE N_SPREAD [KILL_AT ...]

The process loads the model once and then forks, so that every run has the same settings
(library versions, thread count, batch size):

- one uninterrupted run into ``OUT_DIR/whole.h5``;
- for each kill point (N_SPREAD points spread evenly from the first HDF5 flush of the
  uninterrupted run to its last, and each KILL_AT given), a run that kills itself (SIGKILL) at
  that flush (between the rows of a batch and the mask that marks them done, or between two
  batches) into ``OUT_DIR/killed-KILL_AT.h5``, then a resume of that store.

It prints one JSON line per kill point: the flush count of the uninterrupted run, whether the
kill happened, the samples the resume ran, the rows done before the resume that it wrote again,
and the views whose rows differ from the uninterrupted run.
"""

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from geomalign.data import load_folder
from geomalign.extract import load_adapter
from geomalign.extract import runner as extract_runner
from geomalign.store import ActivationStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _store_writer import kill_at_flush

POOLINGS = ["mean", "none", "random"]


def _in_child(work) -> int:
    """Run ``work()`` in a forked child; return its exit status (negative: killed by a signal)."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        except BaseException as error:
            print(f"child failed: {error!r}", file=sys.stderr)
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _done_rows(path: Path) -> dict:
    with ActivationStore(path) as store:
        return {
            view: ~np.isin(np.arange(store.n_samples), store.missing(*view))
            for view in store.views()
        }


def _contents(path: Path) -> dict:
    with ActivationStore(path) as store:
        return {
            (*view, layer): store.read(*view, layer)
            for view in store.views()
            for layer in store.view_info(*view).layers
        }


def main(
    model_dir: str, pairs_file: str, out_dir: str, batch_size: int, spread: int, kills: list[int]
) -> None:
    adapter = load_adapter(model_dir)
    pairs = load_folder(pairs_file)
    out = Path(out_dir)

    def run(path: Path, kill_at: int = 0, log: Path | None = None) -> None:
        flushes = kill_at_flush(kill_at)
        written: dict[str, list[int]] = {}
        real_write = ActivationStore.write

        def write(self, checkpoint, modality, pooling, indices, data):
            key = f"{checkpoint}/{modality}/{pooling}"
            written.setdefault(key, []).extend(int(i) for i in indices)
            real_write(self, checkpoint, modality, pooling, indices, data)

        ActivationStore.write = write
        result = extract_runner.extract(
            adapter,
            pairs,
            path,
            checkpoint_name="tuned",
            poolings=POOLINGS,
            batch_size=batch_size,
            progress=False,
        )
        if log is not None:
            log.write_text(
                json.dumps({"flushes": flushes[0], "n_encoded": result.n_encoded, "rows": written})
            )

    whole = out / "whole.h5"
    assert _in_child(lambda: run(whole, log=out / "whole.json")) == 0
    reference = _contents(whole)
    flushes = json.loads((out / "whole.json").read_text())["flushes"]
    spread_points = np.linspace(1, flushes, spread).round().astype(int).tolist() if spread else []
    for kill_at in sorted({*spread_points, *kills}):
        path, log = out / f"killed-{kill_at}.h5", out / f"resume-{kill_at}.json"
        status = _in_child(lambda: run(path, kill_at))  # noqa: B023 - run at once
        done_before = _done_rows(path) if path.exists() else {}
        resumed = _in_child(lambda: run(path, log=log))  # noqa: B023 - run at once
        record = json.loads(log.read_text()) if resumed == 0 else {}
        rewritten = sum(
            int(done_before[tuple(key.split("/"))][rows].sum())
            for key, rows in record.get("rows", {}).items()
            if tuple(key.split("/")) in done_before
        )
        differing = []
        if resumed == 0:
            got = _contents(path)
            differing = [
                "/".join(map(str, key))
                for key, rows in reference.items()
                if key not in got or not np.array_equal(got[key], rows)
            ]
        report = {
            "kill_at": kill_at,
            "flushes": flushes,
            "killed": status == -signal.SIGKILL,
            "resumed": resumed == 0,
            "n_encoded": record.get("n_encoded"),
            "rewritten": rewritten,
            "differing": differing,
        }
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4], int(sys.argv[4]), int(sys.argv[5]), [int(a) for a in sys.argv[6:]])
