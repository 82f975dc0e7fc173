"""The training loop fine-tuning shares: next-token training of a causal (vision-)language model.

:func:`train_model` trains whatever parameters of a model require gradients on the response
tokens of a set of examples; :func:`optimise` is the loop itself (AdamW, warm-up then cosine
decay, seeded batch order) for any loss of a batch of row indices.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from geomalign._model_parts import IGNORE_INDEX
from geomalign._progress import progress_bar
from geomalign._validation import check_positive_int

__all__ = ["IGNORE_INDEX", "TrainingExamples", "TrainingResult", "optimise", "train_model"]

logger = logging.getLogger(__name__)


@runtime_checkable
class TrainingExamples(Protocol):
    """A training set :func:`train_model` draws batches from."""

    def __len__(self) -> int: ...

    def batch(
        self, indices: Sequence[int] | torch.Tensor, *, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class TrainingResult:
    """What a training run did and how long it took.

    Attributes
    ----------
    wall_time : float
        Seconds spent in the optimisation loop (evaluation excluded).
    steps : int
        Optimisation steps taken.
    n_trainable : int
        Number of parameters that were trained (``requires_grad=True``).
    losses : numpy.ndarray of shape (steps,)
        Training loss of each step.
    metrics : dict of str to float
        ``final_loss`` (mean loss over the last tenth of the steps) plus whatever the
        ``evaluate`` callable returned after training.
    """

    wall_time: float
    steps: int
    n_trainable: int
    losses: np.ndarray = field(repr=False)
    metrics: dict[str, float]


def train_model(
    model: nn.Module,
    examples: TrainingExamples,
    *,
    steps: int,
    lr: float,
    batch_size: int = 32,
    random_state: int = 0,
    warmup_fraction: float = 0.05,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    progress: bool = True,
    description: str = "training",
) -> TrainingResult:
    """Train the parameters of ``model`` that require gradients on next-token prediction.

    Works for any Hugging Face causal language model, with images (LLaVA-like models taking
    ``pixel_values``) or without. Only the response tokens of ``examples`` are scored; every
    parameter with ``requires_grad=True`` is trained and no other, so freezing decides what a run
    tunes (projector only, a window of decoder blocks, everything).

    Parameters
    ----------
    model : torch.nn.Module
        A model whose forward takes ``input_ids``, ``attention_mask`` (and ``pixel_values`` when
        ``examples`` has images) and returns an output with ``logits``. Batches are moved to the
        device of its first trainable parameter.
    examples : TrainingExamples
        The training set (e.g. :class:`geomalign.testbed.Examples`): ``len(examples)`` examples,
        ``examples.batch(rows, device=device)`` the model inputs of some and their ``labels``
        (``IGNORE_INDEX`` on unscored tokens); batches are drawn without replacement, reshuffled
        every epoch.
    steps : int
        Optimisation steps (>= 1).
    lr : float
        Peak learning rate of AdamW (linear warm-up, then cosine decay to a tenth of it).
    batch_size : int, default=32
        Examples per step.
    random_state : int, default=0
        Seed of the batch order; with the same model and data the run is deterministic.
    warmup_fraction : float, default=0.05
        Fraction of ``steps`` spent warming up.
    evaluate : callable, default=None
        Called with the trained model (in eval mode); its dict is merged into ``metrics``.
    progress : bool, default=True
        Show a progress bar.
    description : str, default="training"
        Label of the progress bar and log lines.

    Returns
    -------
    TrainingResult
        Wall time, step count, trainable parameter count, per-step losses and metrics.
    """
    if not isinstance(examples, TrainingExamples):
        raise TypeError(
            "examples must be an Examples set (len() and batch(rows, device=...) returning the "
            f"model inputs and 'labels'); got {type(examples).__name__}."
        )
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not lr > 0 or not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(
            f"lr must be > 0 and warmup_fraction in [0, 1); got lr={lr!r}, "
            f"warmup_fraction={warmup_fraction!r}."
        )
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("model has no parameter with requires_grad=True: nothing to train.")
    device = parameters[0].device

    def loss_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch.pop("labels")
        logits = model(**batch).logits
        return nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
        )

    return optimise(
        model,
        parameters,
        lambda rows: loss_of(examples.batch(rows, device=device)),
        n_examples=len(examples),
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        random_state=random_state,
        warmup_fraction=warmup_fraction,
        evaluate=evaluate,
        progress=progress,
        description=description,
    )


def optimise(
    model: nn.Module,
    parameters: list[nn.Parameter],
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    *,
    n_examples: int,
    steps: int,
    lr: float,
    batch_size: int,
    random_state: int,
    warmup_fraction: float,
    evaluate: Callable[[nn.Module], dict[str, float]] | None,
    progress: bool,
    description: str,
) -> TrainingResult:
    """Train ``parameters`` with AdamW on ``loss_of(rows)`` over shuffled batches of row indices.

    Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to a tenth of
    ``lr``; gradients clipped at norm 1; the batch order depends only on ``random_state``.
    ``evaluate`` is called on the trained model in eval mode and its dict merged into
    ``metrics``.
    """
    optimiser = torch.optim.AdamW(parameters, lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, int(warmup_fraction * steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        done = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * done))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    order = _batch_order(n_examples, steps, batch_size, random_state)
    losses = np.empty(steps)
    model.train()
    start = time.perf_counter()
    with progress_bar(order, progress=progress, desc=description, leave=False) as bar:
        for step, rows in enumerate(bar):
            loss = loss_of(rows)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimiser.step()
            scheduler.step()
            losses[step] = float(loss.detach())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{losses[step]:.3f}")
    wall_time = time.perf_counter() - start
    model.eval()
    metrics = {"final_loss": float(losses[-max(1, steps // 10) :].mean())}
    if evaluate is not None:
        metrics.update(evaluate(model))
    logger.info("%s: %d steps in %.1f s, %s", description, steps, wall_time, metrics)
    return TrainingResult(
        wall_time=wall_time,
        steps=steps,
        n_trainable=sum(p.numel() for p in parameters),
        losses=losses,
        metrics=metrics,
    )


def _batch_order(n: int, steps: int, batch_size: int, random_state: int) -> list[torch.Tensor]:
    """Row indices of every step: shuffled epochs, each batch from one epoch."""
    generator = torch.Generator().manual_seed(random_state)
    size = min(batch_size, n)
    per_epoch = n // size
    batches: list[torch.Tensor] = []
    while len(batches) < steps:
        permutation = torch.randperm(n, generator=generator)
        batches.extend(permutation[k * size : (k + 1) * size] for k in range(per_epoch))
    return batches[:steps]
