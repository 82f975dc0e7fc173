"""One planted-window study: variants of one testbed, analysed, and where each analysis points.

:func:`planted_study` tunes the planted variants of a testbed (:func:`tune_planted`), extracts
the base and every variant on held-out shapes pairs into one store, runs
:func:`~geomalign.analysis.analyze_store` (cross-checkpoint and tuning-change curves, ID profiles)
and cumulative transplant curves on the held-out captions, and reads each analysis with
:mod:`geomalign.testbed.recovery`. ``benchmarks/planted_windows_bench.py`` repeats it over seeds
and prints recovery and false-alarm rates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geomalign.analysis import Calibration, ResultsTable, analyze_store
from geomalign.data.shapes import make_shapes
from geomalign.extract import extract
from geomalign.testbed.build import Testbed
from geomalign.testbed.planted import PLANTED_KINDS, planted_blocks, tune_planted
from geomalign.testbed.recovery import (
    Located,
    located_by_change,
    located_by_selection,
    located_by_similarity,
    located_by_transplant,
)

__all__ = ["ANALYSES", "PlantedStudy", "planted_study"]

#: The analyses a study reads, in table order.
ANALYSES = (
    "cross-checkpoint text",
    "cross-checkpoint image",
    "tuning-change",
    "transplant (blocks only)",
    "transplant (adjacent shell)",
    "select_window (ID peak)",
)
_SHELLS = {"transplant (blocks only)": "base", "transplant (adjacent shell)": "adjacent"}


@dataclass(frozen=True)
class PlantedStudy:
    """Where each analysis located each variant's change.

    Attributes
    ----------
    planted : dict of str to range
        Variant -> the blocks it trained (empty for ``"null"``).
    located : dict of str to dict of str to Located
        Variant -> analysis (:data:`ANALYSES`) -> what the analysis reports.
    table : ResultsTable
        The analyses' rows (transplant rows with ``checkpoint_b`` = the variant).
    """

    planted: dict[str, range]
    located: dict[str, dict[str, Located]]
    table: ResultsTable


def planted_study(
    testbed: Testbed,
    out_dir: str | os.PathLike[str],
    *,
    kinds: Sequence[str] = PLANTED_KINDS,
    width: int = 2,
    seed: int = 0,
    steps: int | None = None,
    lr: float | None = None,
    n_pairs: int = 160,
    n_resamples: int = 299,
    max_images: int = 40,
    id_measure: str = "id-twonn",
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> PlantedStudy:
    """Tune, extract, analyse and read the planted variants of one testbed.

    Parameters
    ----------
    testbed : Testbed
        The testbed whose ``base`` the variants start from.
    out_dir : path-like
        Folder of the store (``planted.h5``, resumed when present).
    kinds : sequence of str, default=PLANTED_KINDS
        Variants to run.
    width : int, default=2
        Blocks of the planted windows; the located windows have as many.
    seed : int, default=0
        Seed of the variants' batch order, the pairs' world (``10_000 + seed``) and the
        resampling.
    steps, lr : int and float, default=None
        Stage-2 steps and learning rate of the variants (None: the testbed's).
    n_pairs : int, default=160
        Held-out pairs extracted.
    n_resamples : int, default=299
        Bootstrap resamples of the curves and the transplant effects (and sign-flip draws):
        enough for a Holm-corrected p-value over 7 layers to reach 0.05.
    max_images : int, default=40
        Held-out images whose captions score the transplant curves.
    id_measure : str, default="id-twonn"
        Intrinsic-dimension measure of the profile :func:`~geomalign.tuning.select_window` reads.
    device : str or torch.device, default="cpu"
        Where to train and run the models.
    progress : bool, default=False
        Show progress bars.

    Returns
    -------
    PlantedStudy
    """
    from geomalign.interventions import held_out_tasks, load_checkpoint, transplant_curve

    n_blocks = testbed.config.text_layers
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants = {
        kind: tune_planted(
            testbed, kind, width=width, seed=seed, steps=steps, lr=lr, device=device,
            progress=progress,
        )
        for kind in kinds
    }  # fmt: skip
    world = make_shapes(n_pairs, random_state=10_000 + seed, image_size=testbed.config.image_size)
    store = out / "planted.h5"
    for name, path in {"base": testbed.base, **variants}.items():
        extract(
            path, world.pairs, store, checkpoint_name=name, poolings=("mean",), batch_size=32,
            device=device, random_state=seed, progress=progress,
        )  # fmt: skip
    calibration = Calibration(n_resamples=n_resamples, max_samples=None, random_state=seed)
    table = analyze_store(
        store,
        measures=["cka-linear", id_measure],
        map_measures=[],
        base="base",
        calibration=calibration,
        progress=progress,
    )
    task = held_out_tasks(testbed, tasks=("caption",), max_images=max_images)[0]
    base_model = load_checkpoint(testbed.base, device=device)
    common: dict[str, Any] = {"width": width, "n_blocks": n_blocks}
    located: dict[str, dict[str, Located]] = {}
    for kind, path in variants.items():
        tuned_model = load_checkpoint(path, device=device)
        reads = {
            "cross-checkpoint text": located_by_similarity(
                table, base="base", tuned=kind, view="text/mean", **common
            ),
            "cross-checkpoint image": located_by_similarity(
                table, base="base", tuned=kind, view="image/mean", **common
            ),
            "tuning-change": located_by_change(table, base="base", tuned=kind, **common),
        }
        for analysis, shell in _SHELLS.items():
            curve = transplant_curve(
                base_model, tuned_model, task, mode="cumulative", shell=shell,  # type: ignore[arg-type]
                tuned_name=kind, n_resamples=n_resamples, n_permutations=n_resamples,
                random_state=seed,
            ).to_table()  # fmt: skip
            table.extend(curve)
            reads[analysis] = located_by_transplant(curve, **common)
        reads["select_window (ID peak)"] = located_by_selection(
            table, tuned=kind, view="image/mean", measure=id_measure, width=width
        )
        located[kind] = reads
        del tuned_model
    planted = {kind: planted_blocks(kind, n_blocks, width=width) for kind in kinds}
    return PlantedStudy(planted=planted, located=located, table=table)
