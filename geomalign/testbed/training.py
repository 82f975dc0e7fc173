"""Training loops of the testbed: next-token training of any causal (vision-)language model, and
the label-supervised pre-training of the vision tower."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from geomalign._progress import progress_bar
from geomalign._validation import check_positive_int
from geomalign.testbed.examples import IGNORE_INDEX, Examples

__all__ = ["TrainingResult", "pretrain_vision", "train_model"]

logger = logging.getLogger(__name__)


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
    examples: Examples,
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
    tunes (projector only, a window of decoder layers, everything).

    Parameters
    ----------
    model : torch.nn.Module
        A model whose forward takes ``input_ids``, ``attention_mask`` (and ``pixel_values`` when
        ``examples`` has images) and returns an output with ``logits``. Batches are moved to the
        device of its first trainable parameter.
    examples : Examples
        The training set; batches are drawn without replacement, reshuffled every epoch.
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
    if not isinstance(examples, Examples):
        raise TypeError(f"examples must be an Examples set; got {type(examples).__name__}.")
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

    return _optimise(
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


def pretrain_vision(
    vision_model: nn.Module,
    pixel_values: torch.Tensor,
    facts: torch.Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int = 64,
    random_state: int = 0,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Pre-train a CLIP vision tower to name the facts of each scene from its output tokens.

    A randomly initialised vision tower is useless when frozen, and real CLIP weights are not
    available offline, so the testbed stands in for CLIP's contrastive pre-training with a
    supervised one: a linear head reads the patch tokens of the tower's last layer side by side
    and predicts the multi-hot :func:`~geomalign.testbed.examples.scene_facts`
    (binary cross-entropy). Reading the token grid, which the LLaVA projector consumes, rather
    than a pooled token makes each patch token carry what is where. The head is discarded
    afterwards; the tower is then frozen, as in LLaVA.

    Parameters
    ----------
    vision_model : transformers.CLIPVisionModel
        The tower to train in place.
    pixel_values : torch.Tensor of shape (n_images, 3, height, width)
        Preprocessed training images.
    facts : torch.Tensor of shape (n_images, n_facts)
        Their multi-hot targets.
    steps, lr, batch_size, random_state, progress
        As in :func:`train_model`; the head's initialisation also follows ``random_state``.
    test : tuple of torch.Tensor, default=None
        Held-out images and facts; when given, ``metrics`` holds ``fact_f1`` (F1 score of the
        predicted facts) and ``scene_accuracy`` (share of images with every fact right).

    Returns
    -------
    TrainingResult
    """
    if pixel_values.shape[0] != facts.shape[0]:
        raise ValueError(
            f"pixel_values has {pixel_values.shape[0]} images but facts has {facts.shape[0]} rows."
        )
    device = next(vision_model.parameters()).device
    generator = torch.Generator().manual_seed(random_state)
    n_tokens = (vision_model.config.image_size // vision_model.config.patch_size) ** 2
    head = nn.Linear(n_tokens * vision_model.config.hidden_size, facts.shape[1]).to(device)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(head.in_features)
        head.weight.copy_(
            torch.empty_like(head.weight, device="cpu").uniform_(-bound, bound, generator=generator)
        )
        head.bias.zero_()
    model = nn.ModuleDict({"tower": vision_model, "head": head})

    def logits_of(images: torch.Tensor) -> torch.Tensor:
        tokens = vision_model(pixel_values=images.to(device)).last_hidden_state[:, 1:]
        return head(tokens.flatten(1))

    def loss_of(rows: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            logits_of(pixel_values[rows]), facts[rows].to(device)
        )

    def evaluate(_: nn.Module) -> dict[str, float]:
        images, truth = test  # type: ignore[misc]
        with torch.inference_mode():
            predicted = torch.cat([logits_of(block) > 0 for block in images.split(256)]).cpu()
        truth = truth.bool()
        hits = int((predicted & truth).sum())
        return {
            "fact_f1": 2 * hits / max(1, int(predicted.sum()) + int(truth.sum())),
            "scene_accuracy": float((predicted == truth).all(dim=1).float().mean()),
        }

    return _optimise(
        model,
        [p for p in model.parameters() if p.requires_grad],
        loss_of,
        n_examples=pixel_values.shape[0],
        steps=check_positive_int(steps, "steps"),
        lr=lr,
        batch_size=check_positive_int(batch_size, "batch_size"),
        random_state=random_state,
        warmup_fraction=0.05,
        evaluate=None if test is None else evaluate,
        progress=progress,
        description="vision pre-training",
    )


def _optimise(
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
