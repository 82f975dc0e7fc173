"""Planted windows: testbed stage-2 variants that change a known part of the model only.

From a testbed's stage-1 ``base`` checkpoint, stage 2 is run again training only

- a window of decoder blocks, ``"early"`` (the first ``width`` blocks), ``"middle"`` (centred)
  or ``"late"`` (the last ``width``): everything else, projector included, stays the base's;
- ``"null"``: the projector only, so that every decoder block stays the base's;
- ``"full"``: projector, embeddings, every block and the head, as the testbed's own stage 2.

The planted part is then known exactly, which is what is needed to check whether an analysis
finds the window a tuning changed, and finds none where no block changed. Training reuses
:func:`geomalign.tuning.set_trainable` and :func:`geomalign.tuning.train_model` on the testbed's
stage-2 data; :mod:`geomalign.testbed.recovery` reads the analyses' tables back into located
windows.

>>> from geomalign.testbed import TestbedConfig, build_testbed, tune_planted
>>> testbed = build_testbed(TestbedConfig.small())  # doctest: +SKIP
>>> tune_planted(testbed, "late", width=2, seed=0)  # doctest: +SKIP
PosixPath('.../planted/late-w2-seed0-...')
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration

from geomalign.testbed.build import Testbed
from geomalign.tuning.freezing import set_trainable
from geomalign.tuning.training import train_model

__all__ = ["PLANTED_KINDS", "planted_blocks", "tune_planted"]

#: Variants, in the order tables list them.
PLANTED_KINDS = ("early", "middle", "late", "null", "full")
_DONE = "planted.json"  # written last: its presence marks a complete variant


def planted_blocks(kind: str, n_blocks: int, *, width: int = 2) -> range:
    """The 0-based decoder blocks a variant trains (empty for ``"null"``, all for ``"full"``).

    ``"middle"`` is the window of ``width`` blocks whose centre is closest to the depth's centre
    (ties towards the earlier window).
    """
    if kind not in PLANTED_KINDS:
        raise ValueError(f"kind must be one of {list(PLANTED_KINDS)}; got {kind!r}.")
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= n_blocks:
        raise ValueError(f"width must be an integer in [1, {n_blocks}]; got {width!r}.")
    starts = {"early": 0, "middle": (n_blocks - width) // 2, "late": n_blocks - width}
    if kind == "null":
        return range(0)
    if kind == "full":
        return range(n_blocks)
    return range(starts[kind], starts[kind] + width)


def tune_planted(
    testbed: Testbed,
    kind: str,
    *,
    width: int = 2,
    seed: int = 0,
    steps: int | None = None,
    lr: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Path:
    """Run stage 2 from the testbed's base checkpoint on the planted part only; cached.

    Parameters
    ----------
    testbed : Testbed
        A built testbed (:func:`~geomalign.testbed.build_testbed`).
    kind : {"early", "middle", "late", "null", "full"}
        What trains; see the module docstring and :func:`planted_blocks`.
    width : int, default=2
        Blocks in the ``"early"``, ``"middle"`` and ``"late"`` windows.
    seed : int, default=0
        Seed of the batch order.
    steps, lr : int and float, default=None
        Optimisation steps and peak learning rate; None: the testbed's stage-2 settings.
    cache_dir : path-like, default=None
        Folder of the variants; None: ``<testbed.root>/planted``.
    device : str or torch.device, default="cpu"
        Where to train.
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The variant's folder, loadable with ``from_pretrained`` like the testbed's checkpoints
        (model and processor); ``planted.json`` beside them records the trained blocks, the
        settings and the training loss. A complete folder is reused.
    """
    if not isinstance(testbed, Testbed):
        raise TypeError(f"testbed must be a Testbed; got {type(testbed).__name__}.")
    config = testbed.config
    blocks = planted_blocks(kind, config.text_layers, width=width)
    settings = {
        "kind": kind,
        "blocks": list(blocks),
        "seed": seed,
        "steps": config.stage2_steps if steps is None else int(steps),
        "lr": config.stage2_lr if lr is None else float(lr),
        "base": testbed.config.fingerprint(),
    }
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    root = Path(cache_dir) if cache_dir is not None else testbed.root / "planted"
    folder = root / f"{kind}-w{width}-seed{seed}-{tag}"
    if (folder / _DONE).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    # transformers types PreTrainedModel.to as unbound
    model = LlavaForConditionalGeneration.from_pretrained(testbed.base).to(device)  # type: ignore[arg-type]
    if kind == "full":
        set_trainable(model, blocks="all", projector=True, embeddings=True, head=True)
    else:
        set_trainable(model, blocks=blocks, projector=kind == "null")
    result = train_model(
        model,
        testbed.data().stage2,
        steps=settings["steps"],  # type: ignore[arg-type]
        lr=settings["lr"],  # type: ignore[arg-type]
        batch_size=config.batch_size,
        random_state=seed,
        description=f"planted {kind} (blocks {list(blocks)}, seed {seed})",
        progress=progress,
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=root))
    try:
        model.save_pretrained(staging)
        AutoProcessor.from_pretrained(testbed.base).save_pretrained(staging)
        record = {**settings, "metrics": result.metrics, "n_trainable": result.n_trainable}
        (staging / _DONE).write_text(json.dumps(record, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
