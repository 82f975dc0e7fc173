"""The label-supervised pre-training of the testbed's vision tower (through the shared loop of
:mod:`geomalign.tuning.training`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from geomalign._validation import check_positive_int
from geomalign.tuning.training import TrainingResult, optimise

if TYPE_CHECKING:
    from transformers import CLIPVisionModel

__all__ = ["pretrain_vision"]


def pretrain_vision(
    vision_model: CLIPVisionModel,
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
        As in :func:`geomalign.tuning.train_model`; the head's initialisation also follows
        ``random_state``.
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
    image_size, patch_size = vision_model.config.image_size, vision_model.config.patch_size
    if not (isinstance(image_size, int) and isinstance(patch_size, int)):
        raise TypeError(
            f"the vision tower needs int image_size and patch_size (square images and patches); "
            f"got {image_size!r} and {patch_size!r}."
        )
    n_tokens = (image_size // patch_size) ** 2
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

    return optimise(
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
