"""The demo: base vs instruction-tuned testbed VLMs on held-out shapes pairs, end to end."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from geomalign.analysis import Calibration, ResultsTable, analyze_store, summarize
from geomalign.analysis.seeds import seed_dependence
from geomalign.data.shapes import make_shapes
from geomalign.extract import extract
from geomalign.report import write_results
from geomalign.testbed import TestbedConfig, build_testbed

__all__ = ["DEMO_MEASURES", "DemoResult", "run_demo"]

logger = logging.getLogger(__name__)

#: One measure of each family: CKA, mutual k-NN, optimal transport, intrinsic dimension.
DEMO_MEASURES = ("cka-linear", "mutual-knn", "ot-sinkhorn", "id-gride")
_SETTINGS = {
    # n_pairs, permutations, bootstrap resamples
    False: (400, 100, 50),
    True: (120, 10, 10),
}


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` wrote and found.

    Attributes
    ----------
    out_dir : Path
        The output folder.
    store : Path
        The activation store (``acts.h5``).
    table : Path
        The results table (``results.csv``).
    summary : str
        The text of ``summary.txt``.
    figures : list of Path
        The figures (``figures/*.png``).
    results : ResultsTable
        The table itself.
    """

    out_dir: Path
    store: Path
    table: Path
    summary: str
    figures: list[Path]
    results: ResultsTable


def run_demo(
    out_dir: str | os.PathLike[str] = "geomalign-demo",
    *,
    small: bool = False,
    n_seeds: int = 3,
    measures: Sequence[str] = DEMO_MEASURES,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    num_threads: int | None = 1,
    random_state: int = 0,
    progress: bool = True,
) -> DemoResult:
    """Build or reuse the testbed, extract base and tuned on held-out pairs, analyse, report.

    Steps:

    1. :func:`~geomalign.testbed.build_testbed` of ``n_seeds`` seeds (cached: reused when
       built before) gives per seed ``s`` a stage-1 (``base-seed<s>``: projector aligned, LLM
       frozen) and a stage-2 (``tuned-seed<s>``: instruction tuned) LLaVA-style checkpoint of 6
       decoder blocks.
    2. Shapes-world pairs from a world seed no testbed trained on.
    3. :func:`~geomalign.extract.extract` of every layer of every checkpoint, image-only prompt
       (mean over the image tokens) and caption-only prompt (mean over the caption tokens), into
       ``acts.h5``; an interrupted run resumes.
    4. :func:`~geomalign.analysis.analyze_store` with :data:`DEMO_MEASURES` and the roles
       ``base`` and ``tuned`` (their seeds paired): cross-modal curves, base-vs-tuned curves,
       change of cross-modal alignment, layer maps with best matches, ID profiles and
       abstraction phases, with permutation nulls and bootstrap CIs, per seed, and the mean
       and range over seeds per role.
    5. ``results.csv``, ``figures/`` and ``summary.txt`` in ``out_dir``; the summary's
       conclusions (:func:`~geomalign.analysis.seed_conclusions`) say whether they hold in
       every seed or are seed-dependent, and the readings of each model follow them.

    Parameters
    ----------
    out_dir : str or path-like, default="geomalign-demo"
        Output folder (created).
    small : bool, default=False
        The small testbed, 120 pairs and 10 permutations/resamples (a quick check that everything
        runs). The default uses the full testbed, 400 pairs, 100 permutations and 50 resamples.
    n_seeds : int, default=3
        Testbeds (seeds ``random_state``, ``random_state + 1``, ...) per role. With 1 the
        checkpoints are named ``base`` and ``tuned`` and nothing is aggregated over seeds.
    measures : sequence of str, default=DEMO_MEASURES
        Registry names of the measures to analyse with.
    cache_dir : path-like, default=None
        Testbed cache (:func:`~geomalign.testbed.default_cache_dir` when None).
    device : str, default="cpu"
        Where the testbed is trained and run.
    num_threads : int or None, default=1
        Torch and BLAS threads for the whole run (restored afterwards); None leaves the current
        settings. The testbed's arrays are small (width 64): one thread is fastest, and several
        threads on a busy machine are an order of magnitude slower.
    random_state : int, default=0
        Seed of the testbed, the pairs and the analysis.
    progress : bool, default=True
        Show progress bars (stderr).

    Returns
    -------
    DemoResult
    """
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ValueError(f"num_threads must be a positive integer or None; got {num_threads!r}.")
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer; got {n_seeds!r}.")
    args = (Path(out_dir), small, n_seeds, measures, cache_dir, device, random_state, progress)
    if num_threads is None:
        return _run(*args)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(num_threads)
        with threadpool_limits(limits=num_threads):
            return _run(*args)
    finally:
        torch.set_num_threads(threads)


def _run(
    out: Path,
    small: bool,
    n_seeds: int,
    measures: Sequence[str],
    cache_dir: str | os.PathLike[str] | None,
    device: str,
    random_state: int,
    progress: bool,
) -> DemoResult:
    n_pairs, n_permutations, n_resamples = _SETTINGS[bool(small)]
    out.mkdir(parents=True, exist_ok=True)
    seeds = [random_state + k for k in range(n_seeds)]
    testbeds = {}
    for seed in seeds:
        config = TestbedConfig.small(seed=seed) if small else TestbedConfig(seed=seed)
        logger.info("demo: testbed (%s, seed %d)", "small" if small else "full", seed)
        testbeds[seed] = build_testbed(
            config, cache_dir=cache_dir, device=device, num_threads=None, progress=progress
        )
    # the held-out world's seed is none of the testbeds' training world seeds
    world = make_shapes(n_pairs, random_state=random_state + n_seeds, image_size=config.image_size)
    store = out / "acts.h5"
    suffix = {seed: f"-seed{seed}" if n_seeds > 1 else "" for seed in seeds}
    roles: dict[str, list[str]] = {"base": [], "tuned": []}
    for seed, testbed in testbeds.items():
        for role, path in (("base", testbed.base), ("tuned", testbed.tuned)):
            roles[role].append(role + suffix[seed])
            extract(
                path,
                world.pairs,
                store,
                checkpoint_name=role + suffix[seed],
                poolings=("mean",),
                batch_size=32,
                device=device,
                random_state=random_state,
                progress=progress,
            )
    calibration = Calibration(
        n_permutations=n_permutations,
        n_resamples=n_resamples,
        max_samples=None,
        random_state=random_state,
    )
    table = analyze_store(
        store,
        measures=measures,
        base="base",
        roles=roles if n_seeds > 1 else None,
        calibration=calibration,
        progress=progress,
    )
    written = write_results(table, out)
    metrics = {role + suffix[s]: t.metrics[role] for s, t in testbeds.items() for role in roles}
    header = _header(metrics, seeds, suffix, n_pairs, calibration, small)
    summary = header + summarize(table)
    written.summary.write_text(summary, encoding="utf-8")
    return DemoResult(
        out_dir=out,
        store=store,
        table=written.table,
        summary=summary,
        figures=written.figures,
        results=table,
    )


def _header(
    metrics: dict[str, dict[str, float]],
    seeds: list[int],
    suffix: dict[int, str],
    n_pairs: int,
    calibration: Calibration,
    small: bool,
) -> str:
    qa = {name: m.get("qa_accuracy", float("nan")) for name, m in metrics.items()}
    scores = ", ".join(f"{k} {v:.0%}" for k, v in qa.items())
    gap = {f"seed {s}": qa["tuned" + suffix[s]] - qa["base" + suffix[s]] for s in seeds}
    gaps = (
        seed_dependence("Tuned minus base accuracy", gap, fmt="{:+.0%}") + ".\n"
        if len(seeds) > 1
        else ""
    )
    seeded = f", {len(seeds)} seeds: {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""
    return (
        f"geomalign demo ({'small' if small else 'full'} testbed{seeded}): base = stage-1 "
        "LLaVA-style model (projector trained, LLM frozen), tuned = after visual instruction "
        "tuning.\n"
        f"Held-out question accuracy: {scores}.\n{gaps}"
        f"{n_pairs} held-out shapes pairs; image view = mean over image tokens of an image-only "
        "prompt, text view = mean over caption tokens of a caption-only prompt.\n"
        "Layer 0 = embedding output, layer k = output of decoder block k (the last one after the "
        "final norm, which rescales it).\n"
        f"p-values: {calibration.n_permutations} permutations; {calibration.confidence:.0%} CIs: "
        f"{calibration.n_resamples} resamples (bootstrap, or half-samples for neighbourhood "
        "measures), centred on the full-sample value.\n\n"
    )
