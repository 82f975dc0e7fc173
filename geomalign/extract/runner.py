"""Run an adapter over a paired dataset and write pooled hidden states to an activation store."""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geomalign._progress import progress_bar
from geomalign._validation import check_device
from geomalign.data import PairedDataset
from geomalign.extract._base import Adapter, EncodedBatch
from geomalign.extract._pooling import (
    POOLINGS,
    REGION_POOLINGS,
    ViewKey,
    pool,
    sample_seed,
    view_keys,
    with_part,
)
from geomalign.extract._weights import weights_fingerprint
from geomalign.extract.auto import load_adapter
from geomalign.store import ActivationStore

__all__ = ["ExtractionResult", "extract"]

logger = logging.getLogger(__name__)

_MAX_LISTED = 5


@dataclass(frozen=True)
class ExtractionResult:
    """What one :func:`extract` call did.

    Attributes
    ----------
    store_path : Path
        The store written to.
    checkpoint : str
        The checkpoint name the views are stored under.
    views : tuple of (str, str)
        The (modality, pooling) views of this checkpoint, all complete on return (with a
        ``shard``: complete on the shard's samples).
    layers : tuple of int
        The layers kept (0 = embedding output).
    n_encoded : int
        Samples run through the model by this call, summed over modalities (0 when a previous
        run had already written everything).
    """

    store_path: Path
    checkpoint: str
    views: tuple[tuple[str, str], ...]
    layers: tuple[int, ...]
    n_encoded: int


def extract(
    model: Adapter | str | os.PathLike,
    dataset: PairedDataset,
    store_path: str | os.PathLike,
    *,
    checkpoint_name: str,
    poolings: str | Sequence[str] = ("mean", "last"),
    modalities: Sequence[str] | None = None,
    layers: str | Sequence[int] = "all",
    batch_size: int = 8,
    store_dtype: str = "float32",
    random_state: int = 0,
    resume: bool = True,
    overwrite: bool = False,
    revision: str | None = None,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    templates: Mapping[str, str] | None = None,
    shard: tuple[int, int] | None = None,
    long_captions: str = "truncate",
    progress: bool = True,
) -> ExtractionResult:
    """Extract per-layer hidden states of a model on paired data into an activation store.

    For every modality (image-only and caption-only prompts for a VLM, captions for a text
    model) and every pooling, the store gets a view ``(checkpoint_name, modality, pooling)`` of
    shape (n_layers, n_samples, hidden_size) (token rows for pooling "none"). Each batch is run
    through the model once for all poolings and written as soon as it is pooled, so memory is
    bounded by one batch. Rows already written (by an interrupted run, or another pooling) are
    skipped: calling again after a crash or a kill resumes where the run stopped.

    Several checkpoints share one store: call ``extract`` once per checkpoint with the same
    ``dataset`` and ``store_path`` and a different ``checkpoint_name``.

    To spread one extraction over several GPUs or machines, run it once per rank with
    ``shard=(rank, world_size)`` and a store file of its own: every rank's store holds the whole
    dataset's sample table but writes only the rows of its share, and
    :func:`geomalign.store.merge_stores` joins the files into one. Resume works per shard file as
    without sharding.

    Parameters
    ----------
    model : Adapter or str or path-like
        An adapter (:class:`VLMAdapter`, :class:`TextAdapter`, :class:`ModuleAdapter`), or a hub
        id or local folder loaded with :func:`load_adapter`.
    dataset : PairedDataset
        The pairs; their ids, captions and labels make the store's sample table.
    store_path : str or path-like
        The HDF5 store; created if absent.
    checkpoint_name : str
        Name of this checkpoint in the store, e.g. ``"base"`` or ``"tuned"``.
    poolings : str or sequence of str, default=("mean", "last")
        Among "mean" (over the image tokens or caption tokens), "last" (the prompt's last token),
        "first" (its first token: an encoder's CLS),
        "random" (one token of the region, chosen from ``random_state`` and the sample id) and
        "none" (every region token; a token view, for small runs).
    modalities : sequence of str, default=None
        Views to extract; the adapter's default modalities when None (the text views only for a
        captions-only dataset). A VLM also takes "joint": image and caption in one prompt, whose
        one forward pass fills ``joint-image`` and ``joint-text`` views (region poolings: mean,
        random, none) and ``joint`` views (last, first).
    layers : "all" or sequence of int, default="all"
        Layers to keep (0 = embedding output, negative numbers count from the end).
    batch_size : int, default=8
        Samples per forward pass.
    store_dtype : {"float32", "float16", "bfloat16"}, default="float32"
        On-disk dtype of the views (pooling itself runs in float32); bfloat16 is kept
        losslessly as its bit pattern and read back as float32.
    random_state : int, default=0
        Seed of the "random" pooling; recorded with the checkpoint.
    resume : bool, default=True
        Reopen an existing store (it must hold the same sample ids and captions) and write only
        the missing rows. With False an existing file is an error.
    overwrite : bool, default=False
        Replace an existing file, with every checkpoint in it.
    revision, dtype, device : default=None
        Passed to :func:`load_adapter` when ``model`` is an id or path (dtype then defaults to
        float32 and device to CUDA when present); must be None for an adapter.
    templates : mapping of str to str, default=None
        Prompt templates by modality, passed to :func:`load_adapter`; must be None for an adapter.
    shard : (int, int), default=None
        ``(rank, world_size)``: write only the rank's contiguous share of the samples,
        ``np.array_split(np.arange(len(dataset)), world_size)[rank]`` (the first
        ``len(dataset) % world_size`` ranks get one sample more), so that ranks never overlap and
        together cover the dataset. None extracts every sample. Token views (pooling "none") still
        encode, without running the model, every sample to lay out the token rows, so that all
        ranks' stores share one layout.
    long_captions : {"truncate", "error"}, default="truncate"
        A caption whose prompt exceeds the model's context (its position embeddings): cut it to
        fit and log a warning naming the sample, or raise ValueError naming it (rows already
        written stay written).
    progress : bool, default=True
        Show a progress bar (tqdm, on stderr, and only when stderr is a terminal).

    Returns
    -------
    ExtractionResult

    Raises
    ------
    ValueError
        For unknown poolings or modalities, layers out of range, a sample without image or
        caption tokens (named), a store of other samples, or a checkpoint name already used
        with other provenance (see :class:`geomalign.store.StoreError`), other weights
        included: the checkpoint records ``weights_sha256``, the SHA-256 of the adapter's
        ``model`` state dict (:func:`geomalign.extract._weights.weights_fingerprint`), and a
        resume with weights that changed since is refused.

    Examples
    --------
    >>> extract("llava-hf/llava-1.5-7b-hf", pairs, "acts.h5", checkpoint_name="tuned",
    ...         dtype="float16")  # doctest: +SKIP

    One rank of ``torchrun --nproc-per-node 4 script.py``:

    >>> rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])  # doctest: +SKIP
    >>> extract("llava-hf/llava-1.5-7b-hf", pairs, f"acts.rank{rank}.h5", checkpoint_name="tuned",
    ...         device=f"cuda:{os.environ['LOCAL_RANK']}", shard=(rank, world))  # doctest: +SKIP
    """
    if not isinstance(dataset, PairedDataset):
        raise TypeError(f"dataset must be a PairedDataset; got {type(dataset).__name__}.")
    share = _shard_mask(shard, len(dataset))
    # options that need no model are checked before one is loaded
    poolings = _check_poolings(poolings)
    if long_captions not in ("truncate", "error"):
        raise ValueError(f"long_captions must be 'truncate' or 'error'; got {long_captions!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if store_dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(
            f"store_dtype must be 'float32', 'float16' or 'bfloat16'; got {store_dtype!r}."
        )
    if isinstance(random_state, bool) or not isinstance(random_state, int) or random_state < 0:
        raise ValueError(f"random_state must be a non-negative int; got {random_state!r}.")
    if device is not None:
        check_device(device)
    adapter = _as_adapter(model, revision=revision, dtype=dtype, device=device, templates=templates)
    modalities = _check_modalities(adapter, modalities, dataset)
    layers = adapter.check_layers(layers)

    n_encoded = 0
    with ActivationStore.create(
        store_path,
        dataset.ids,
        captions=dataset.captions,
        labels=dataset.labels,
        overwrite=overwrite,
        resume=resume,
    ) as store:
        # the model's provenance (model, revision, dtype, template, ...) and its weights' hash
        recorded: dict[str, Any] = {**_weights_record(adapter), **adapter.provenance()}
        with store.transaction():  # the checkpoint and its views appear in one atomic step
            store.add_checkpoint(
                checkpoint_name,
                n_layers=adapter.n_layers,
                hidden_size=adapter.hidden_size,
                random_state=random_state,
                **recorded,
            )
            for modality in modalities:
                for view in view_keys(adapter, modality, poolings):
                    _create_view(
                        store,
                        adapter,
                        dataset,
                        checkpoint_name,
                        modality,
                        view,
                        layers=layers,
                        dtype=store_dtype,
                        batch_size=batch_size,
                    )
        plan = {}
        for modality in modalities:
            needed = {}
            for view in view_keys(adapter, modality, poolings):
                needed[view] = np.zeros(len(dataset), dtype=bool)
                needed[view][store.missing(checkpoint_name, view.modality, view.pooling)] = True
                needed[view] &= share
            todo = np.flatnonzero(np.logical_or.reduce(list(needed.values())))
            plan[modality] = needed, todo
            if 0 < todo.size < share.sum():
                logger.info(
                    "%s: resuming %s/%s with %d of %d samples left",
                    store.path,
                    checkpoint_name,
                    modality,
                    todo.size,
                    share.sum(),
                )
        total = sum(todo.size for _, todo in plan.values())
        with progress_bar(
            progress=progress, total=total, desc=f"extract {checkpoint_name}", unit="sample"
        ) as bar:
            for modality, (needed, todo) in plan.items():
                for start in range(0, todo.size, batch_size):
                    chunk = todo[start : start + batch_size]
                    bar.set_postfix_str(modality)
                    _run_batch(
                        store,
                        adapter,
                        dataset,
                        checkpoint_name,
                        modality,
                        needed,
                        chunk,
                        layers=layers,
                        random_state=random_state,
                        long_captions=long_captions,
                    )
                    n_encoded += chunk.size
                    bar.update(chunk.size)
    return ExtractionResult(
        store_path=Path(store_path),
        checkpoint=checkpoint_name,
        views=tuple(
            (v.modality, v.pooling) for m in modalities for v in view_keys(adapter, m, poolings)
        ),
        layers=tuple(layers),
        n_encoded=n_encoded,
    )


def _run_batch(
    store: ActivationStore,
    adapter: Adapter,
    dataset: PairedDataset,
    checkpoint: str,
    modality: str,
    needed: Mapping[ViewKey, np.ndarray],
    chunk: np.ndarray,
    *,
    layers: list[int],
    random_state: int,
    long_captions: str,
) -> None:
    """Encode, run and pool one batch; write it to every view that lacks some of its samples.

    ``needed`` maps each view to a boolean mask over the dataset of the samples it lacks.
    """
    batch = adapter.encode(modality, _items(dataset, modality, chunk))
    for row, note in batch.truncated.items():
        where = f"{dataset.source}: sample {dataset.ids[chunk[row]]!r}"
        if long_captions == "error":
            raise ValueError(f"{where}: {note.replace('truncated', 'would be truncated', 1)}.")
        logger.warning("%s: %s", where, note)
    for view in needed:
        if view.pooling in REGION_POOLINGS:
            _check_regions(with_part(batch, view.part), chunk, dataset, view.modality)
    states = adapter.hidden_states(batch, layers)
    for view, mask in needed.items():
        rows = np.flatnonzero(mask[chunk])
        if rows.size == 0:
            continue
        seeds = None
        if view.pooling == "random":
            seeds = [sample_seed(random_state, dataset.ids[chunk[r]]) for r in rows]
        part = with_part(batch, view.part)
        data = pool(states, part, view.pooling, torch.from_numpy(rows), seeds=seeds)
        store.write(checkpoint, view.modality, view.pooling, chunk[rows], data)


def _create_view(
    store: ActivationStore,
    adapter: Adapter,
    dataset: PairedDataset,
    checkpoint: str,
    modality: str,
    view: ViewKey,
    *,
    layers: list[int],
    dtype: str,
    batch_size: int,
) -> None:
    counts = None
    key = (checkpoint, view.modality, view.pooling)
    offsets = store.row_offsets(*key) if key in store.views() else None
    if view.pooling == "none" and offsets is not None:
        counts = np.diff(offsets)
    elif view.pooling == "none":
        # a token view is allocated in full up front: count every sample's region tokens
        counts = np.zeros(len(dataset), dtype=np.int64)
        for start in range(0, len(dataset), batch_size):
            chunk = np.arange(start, min(start + batch_size, len(dataset)))
            batch = with_part(adapter.encode(modality, _items(dataset, modality, chunk)), view.part)
            _check_regions(batch, chunk, dataset, view.modality)
            counts[chunk] = batch.region.sum(1).numpy()
    store.create_view(
        *key,
        layers=layers,
        dim=adapter.hidden_size,
        dtype=dtype,
        tokens_per_sample=counts,
    )


def _weights_record(adapter: Adapter) -> dict[str, str]:
    """``weights_sha256`` of the adapter's module, checked when a checkpoint is resumed."""
    model = getattr(adapter, "model", None)
    return (
        {"weights_sha256": weights_fingerprint(model)} if isinstance(model, torch.nn.Module) else {}
    )


def _items(dataset: PairedDataset, modality: str, indices: np.ndarray) -> list[object]:
    if modality == "image":
        return [dataset.image(int(i)) for i in indices]
    if modality == "joint":
        return [(dataset.image(int(i)), dataset.captions[int(i)]) for i in indices]
    return [dataset.captions[int(i)] for i in indices]


def _check_regions(
    batch: EncodedBatch, chunk: np.ndarray, dataset: PairedDataset, modality: str
) -> None:
    if len(batch) != chunk.size:
        raise ValueError(f"the adapter encoded {len(batch)} samples for a batch of {chunk.size}.")
    empty = [dataset.ids[chunk[r]] for r in np.flatnonzero(batch.region.sum(1).numpy() == 0)]
    if empty:
        what = "image tokens" if modality.endswith("image") else "caption tokens"
        raise ValueError(
            f"{dataset.source}: {len(empty)} samples have no {what} in their {modality} prompt "
            f"(e.g. {empty[:_MAX_LISTED]}); mean, random and token pooling need them."
        )


def _as_adapter(
    model: Adapter | str | os.PathLike,
    *,
    revision: str | None,
    dtype: str | torch.dtype | None,
    device: str | torch.device | None,
    templates: Mapping[str, str] | None,
) -> Adapter:
    if isinstance(model, Adapter):
        given = {"revision": revision, "dtype": dtype, "device": device, "templates": templates}
        set_ = [k for k, v in given.items() if v is not None]
        if set_:
            raise ValueError(
                f"{set_} apply only when model is an id or path; set them when building the "
                f"{type(model).__name__}."
            )
        return model
    if isinstance(model, str | os.PathLike):
        return load_adapter(
            model,
            revision=revision,
            dtype="float32" if dtype is None else dtype,
            device=device,
            templates=templates,
        )
    raise TypeError(f"model must be an Adapter or a model id or path; got {type(model).__name__}.")


def _shard_mask(shard: tuple[int, int] | None, n_samples: int) -> np.ndarray:
    """Boolean mask over the samples of the rank's contiguous share (all samples for None)."""
    share = np.zeros(n_samples, dtype=bool)
    if shard is None:
        share[:] = True
        return share
    if not isinstance(shard, tuple | list) or len(shard) != 2:
        raise TypeError(f"shard must be a (rank, world_size) pair of ints; got {shard!r}.")
    rank, world_size = shard
    for name, value in (("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"shard {name} must be an int; got {value!r} in shard={shard!r}.")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"shard must be (rank, world_size) with world_size >= 1 and 0 <= rank < world_size; "
            f"got rank={rank}, world_size={world_size}."
        )
    share[np.array_split(np.arange(n_samples), int(world_size))[int(rank)]] = True
    return share


def _check_poolings(poolings: str | Sequence[str]) -> list[str]:
    names = [poolings] if isinstance(poolings, str) else list(poolings)
    unknown = [p for p in names if p not in POOLINGS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"poolings must be distinct names among {list(POOLINGS)}; got {names}.")
    return names


def _check_modalities(
    adapter: Adapter, modalities: Sequence[str] | None, dataset: PairedDataset
) -> list[str]:
    if modalities is None:
        names = list(adapter.modalities)
        if not dataset.has_images and names != ["text"]:
            logger.warning("%s holds captions only: extracting the text views", dataset.source)
            names = [name for name in names if name == "text"]
    else:
        names = [modalities] if isinstance(modalities, str) else list(modalities)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"modalities must be distinct and non-empty; got {names}.")
    for name in names:
        adapter.check_modality(name)
        if name != "text" and not dataset.has_images:
            raise ValueError(
                f"{dataset.source} holds captions only; the {name!r} view needs images."
            )
    return names
