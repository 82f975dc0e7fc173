"""Every analysis a store supports, in one call: the table behind ``geomalign analyze``."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import closing, nullcontext
from dataclasses import astuple, replace
from functools import partial
from typing import Any

import torch
from joblib import Parallel, delayed, effective_n_jobs

from geomalign import metrics
from geomalign._progress import progress_bar, reporting_to
from geomalign.analysis._threads import kernel_threads
from geomalign.analysis._views import StoreLike, View, open_store, shared_reads
from geomalign.analysis.curves import (
    cross_checkpoint_curve,
    cross_modal_curve,
    side_view,
    tuning_change_curve,
)
from geomalign.analysis.evaluation import Calibration
from geomalign.analysis.id_profile import abstraction_phase, id_profile
from geomalign.analysis.layer_maps import layer_map
from geomalign.analysis.seeds import check_roles, seed_spread
from geomalign.analysis.table import ResultsTable
from geomalign.metrics import Measure

__all__ = ["analyze_store"]

logger = logging.getLogger(__name__)


def analyze_store(
    store: StoreLike,
    *,
    measures: Sequence[str | Measure],
    map_measures: Sequence[str | Measure] | None = None,
    base: str | None = None,
    roles: Mapping[str, Sequence[str]] | None = None,
    image: tuple[str, str | None] = ("image", None),
    text: tuple[str, str | None] = ("text", None),
    calibration: Calibration | None = None,
    min_prominence: float = 0.0,
    progress: bool = False,
    on_analysis: Callable[[str, ResultsTable], None] | None = None,
    device: str | torch.device | None = None,
    n_jobs: int | None = None,
) -> ResultsTable:
    """Run every analysis the store's views allow and return one table.

    With checkpoints ``base, c1, c2, ...`` and two-view measures (similarities, distances):

    - cross-modal curve of every checkpoint (image vs text view);
    - layer x layer map image vs text of every checkpoint, with best matches (``map_measures``);
    - for each other checkpoint ``c``: the base-vs-``c`` curve of each modality and the change of
      cross-modal alignment ``c - base`` (paired bootstrap).

    With dimension measures: the ID profile of every pooled image and text view, and its
    abstraction phase.

    With ``roles`` (several checkpoints per role, e.g. base and tuned models of three seeds
    each), every analysis runs per checkpoint, comparisons pair the roles' checkpoints by
    position (seed ``s`` of the tuned role against seed ``s`` of the base role), and
    :func:`~geomalign.analysis.seed_spread` adds, per role and layer, the mean over seeds with
    the between-seed spread (``seed_low``, ``seed_high``, ``n_seeds``) beside the resampling
    interval.

    Parameters
    ----------
    store : ActivationStore or path
        The activation store.
    measures : sequence of str or Measure
        Registry names or :class:`~geomalign.metrics.Measure` objects, e.g.
        ``["cka-linear", "mutual-knn", "ot-sinkhorn", "id-gride"]``.
    map_measures : sequence of str, default=None
        Two-view measures for layer x layer maps; the first two-view entry of ``measures`` when
        None, no maps when empty.
    base : str, default=None
        Reference checkpoint of the comparisons; the first checkpoint of the store when None.
        With ``roles``: the reference role, the first role when None.
    roles : mapping of str to sequence of str, default=None
        Role -> its checkpoints, e.g. ``{"base": ["base-seed0", "base-seed1"], "tuned":
        ["tuned-seed0", "tuned-seed1"]}``; every role has as many checkpoints, in the same seed
        order. Only the roles' checkpoints are analysed. None: every checkpoint on its own.
    image, text : (modality, pooling)
        The image and caption views; a None pooling picks
        :func:`~geomalign.analysis.default_pooling`. Analyses needing a modality the store lacks
        are skipped (logged).
    calibration : Calibration, default=None
        Nulls, CIs and subsampling, shared by every analysis.
    min_prominence : float, default=0.0
        See :func:`~geomalign.analysis.detect_abstraction_phase`.
    progress : bool, default=False
        Show a progress bar (on stderr).
    on_analysis : callable, default=None
        Called as ``on_analysis(name, table)`` after each analysis with the rows so far (the
        abstraction phases are added last), e.g. to save them: an error in one analysis then
        loses only that analysis.
    device : str or torch.device, default=None
        Where the measures compute (e.g. ``"cuda"``): every measure, its null and resamples,
        layer maps and streamed CKA (:func:`~geomalign.metrics.on_device`); the CPU when None.
        Checked before any analysis starts.
    n_jobs : int, default=None
        Analyses run at once, each in its own worker process (joblib), with the machine's cores
        shared among them; None means 1 (in this process), -1 every core. The table is the same
        whatever ``n_jobs``, row for row in the same order: every analysis draws its subsample,
        nulls and resamples from ``calibration.random_state`` alone (values computed on another
        number of threads agree to rounding). ``on_analysis`` is still called in analysis order,
        as soon as the analyses before are done. Measures reach the workers through
        cloudpickle, so a function defined in a script or notebook works; on a GPU, keep one
        job per device.

    Returns
    -------
    ResultsTable
    """
    calibration = calibration or Calibration()
    metrics.check_device(device)
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1
    ):
        raise ValueError(f"n_jobs must be None, a positive int or -1 (every core); got {n_jobs!r}.")
    jobs = effective_n_jobs(n_jobs)
    store = open_store(store)
    # workers open the file by its path (read-only) instead of receiving the open store
    source: StoreLike = store if jobs == 1 else store.path
    resolved = [metrics.on_device(metrics.resolve(m), device) for m in measures]
    if not resolved:
        raise ValueError(f"measures: give at least one; available: {metrics.available()}.")
    two_view = [m for m in resolved if m.n_views == 2]
    one_view = [m for m in resolved if m.n_views == 1]
    maps = (
        two_view[:1]
        if map_measures is None
        else [metrics.on_device(metrics.resolve(m), device) for m in map_measures]
    )
    checkpoints = list(store.checkpoints())
    if not checkpoints:
        raise ValueError(f"{store.path}: the store holds no checkpoint.")
    if roles is None:
        base = checkpoints[0] if base is None else base
        if base not in checkpoints:
            raise ValueError(f"base: {store.path} has checkpoints {checkpoints}; got {base!r}.")
        groups: dict[str, tuple[str, ...]] = {base: (base,)}
        groups |= {c: (c,) for c in checkpoints if c != base}
    else:
        groups = check_roles(roles, checkpoints, where=f"{store.path}: roles")
        base = next(iter(groups)) if base is None else base
        if base not in groups:
            raise ValueError(f"base: the roles are {list(groups)}; got {base!r}.")
        groups = {base: groups[base], **{r: m for r, m in groups.items() if r != base}}
    ordered = [c for members in groups.values() for c in members]
    # (reference, compared) checkpoint pairs, seed by seed
    pairs = [
        pair
        for role, members in groups.items()
        if role != base
        for pair in zip(groups[base], members, strict=True)
    ]
    stored = {(c, m) for c, m, _ in store.views()}

    def has(ckpt: str, modality: str) -> bool:
        return (ckpt, modality) in stored

    common: dict[str, Any] = {"calibration": calibration}
    curves: dict[str, Any] = {"measures": two_view, **common}
    tasks: list[tuple[str, int, Callable[[], ResultsTable]]] = []

    def add(name: str, views: list[View], task: Callable[[], ResultsTable]) -> None:
        # progress is counted in layers: those the views share (the rows of a layer map)
        shared = set.intersection(*(set(store.view_info(*astuple(v)).layers) for v in views))
        tasks.append((name, len(shared), task))

    for ckpt in ordered:
        if not (has(ckpt, image[0]) and has(ckpt, text[0])):
            logger.info(
                "%s: no %s and %s views; cross-modal analyses skipped", ckpt, image[0], text[0]
            )
            continue
        if two_view:
            add(
                f"cross-modal {ckpt}",
                [side_view(store, ckpt, image), side_view(store, ckpt, text)],
                partial(cross_modal_curve, source, ckpt, image=image, text=text, **curves),
            )
        for m in maps:
            view_a, view_b = side_view(store, ckpt, image), side_view(store, ckpt, text)
            add(
                f"layer map {ckpt} {m.name}",
                [view_a],
                partial(layer_map, source, view_a, view_b, measure=m, **common),
            )
    for reference, other in pairs:
        for modality, pooling in (image, text):
            if two_view and has(reference, modality) and has(other, modality):
                view = side_view(store, reference, (modality, pooling))
                add(
                    f"{reference} vs {other} {modality}",
                    [view, replace(view, checkpoint=other)],
                    partial(
                        cross_checkpoint_curve,
                        source,
                        modality,
                        base=reference,
                        tuned=other,
                        pooling=pooling,
                        **curves,
                    ),
                )
        if two_view and all(has(c, m) for c in (reference, other) for m in (image[0], text[0])):
            sides = [side_view(store, reference, image), side_view(store, reference, text)]
            add(
                f"tuning change {other}",
                [*sides, *(replace(v, checkpoint=other) for v in sides)],
                partial(
                    tuning_change_curve,
                    source,
                    base=reference,
                    tuned=other,
                    image=image,
                    text=text,
                    **curves,
                ),
            )
    for m in one_view:
        for ckpt in ordered:
            for side in (image, text):
                if has(ckpt, side[0]):
                    view = side_view(store, ckpt, side)
                    add(
                        f"ID {ckpt} {side[0]} {m.name}",
                        [view],
                        partial(id_profile, source, view, measure=m, **common),
                    )
    if not tasks:
        raise ValueError(
            f"{store.path}: nothing to analyse with measures {measures}; stored views: "
            f"{', '.join(str(View(*v)) for v in store.views()) or 'none'}."
        )
    table = ResultsTable()
    n_read = store.n_samples if calibration.max_samples is None else calibration.max_samples
    width = max(store.view_info(*view).dim for view in store.views())
    size = (min(n_read, store.n_samples), width)
    total = sum(units for _, units, _ in tasks)
    bar = progress_bar(total=total, progress=progress, desc="analyze", unit="layer")
    # one process: the analyses share their reads; workers read what their analysis needs
    with bar, reporting_to(bar), shared_reads() if jobs == 1 else nullcontext():
        results: Generator[ResultsTable, None, None]
        if jobs == 1:
            results = (_run_task(name, task, size) for name, _, task in tasks)
        else:
            results = _in_order(
                Parallel(n_jobs=jobs, return_as="generator_unordered")(
                    delayed(_numbered)(i, name, task, size)
                    for i, (name, _, task) in enumerate(tasks)
                )
            )
        done = 0
        with closing(results):  # an error stops the analyses still to run
            for name, units, _ in tasks:
                bar.set_postfix_str(name if jobs == 1 else "")
                done += units
                table.extend(next(results))  # in one process, the analysis runs here
                bar.update(done - bar.n)  # analyses that do not count their layers
                if on_analysis is not None:
                    on_analysis(name, table)
    if len(table.select(analysis="id-profile")):
        table.extend(abstraction_phase(table, min_prominence=min_prominence))
        if on_analysis is not None:
            on_analysis("abstraction phases", table)
    if any(len(members) > 1 for members in groups.values()):
        table.extend(seed_spread(table, groups))
        if on_analysis is not None:
            on_analysis("seed spread", table)
    return table


def _run_task(
    name: str,
    task: Callable[[], ResultsTable],
    size: tuple[int, int],
    *,
    own_reads: bool = False,
) -> ResultsTable:
    """One analysis, its kernels on the threads inputs of ``size`` (rows, width) warrant."""
    logger.info("analysis: %s", name)
    with kernel_threads(*size), shared_reads() if own_reads else nullcontext():
        return task()


def _numbered(
    i: int, name: str, task: Callable[[], ResultsTable], size: tuple[int, int]
) -> tuple[int, ResultsTable | BaseException]:
    """``(i, rows)`` of analysis ``i`` run in a worker (reading what it needs itself), or
    ``(i, the error)``, handed back to be raised in analysis order."""
    try:
        return i, _run_task(name, task, size, own_reads=True)
    except Exception as error:  # raised by _in_order once the analyses before are saved
        return i, error


def _in_order(
    done: Generator[tuple[int, ResultsTable | BaseException], None, None],
) -> Generator[ResultsTable, None, None]:
    """The results of analyses finished in any order, yielded in analysis order as soon as
    every analysis before has finished (the workers meanwhile go on with the next ones); an
    analysis's error is raised at its turn, as in one process."""
    waiting: dict[int, ResultsTable | BaseException] = {}
    following = 0
    try:
        for i, result in done:
            waiting[i] = result
            while following in waiting:
                result = waiting.pop(following)
                if isinstance(result, BaseException):
                    raise result
                yield result
                following += 1
    finally:  # stopped early: cancel the analyses still queued (joblib warns that it does)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            done.close()
