"""Probes and causal interventions on vision-language models.

- :mod:`~geomalign.interventions.transplant`: hybrids of a base and a tuned checkpoint with decoder
  blocks copied from the tuned one, made in place;
- :mod:`~geomalign.interventions.visual_tokens`: image-token skip, ablation and attention knockout
  through forward hooks;
- :mod:`~geomalign.interventions.probes`: per-layer linear probes and cross-modal probe transfer;
- :mod:`~geomalign.interventions.scoring`: per-item task scores (caption log-likelihood, answer
  exact match).
"""

from geomalign.interventions._model import decoder_layers
from geomalign.interventions.probes import ProbeResult, probe_accuracy, transfer_accuracy
from geomalign.interventions.scoring import TaskData, make_task, score_items, task_from_labels
from geomalign.interventions.transplant import LayerTransplant, layer_windows
from geomalign.interventions.visual_tokens import (
    ablate_visual_tokens,
    knockout_visual_attention,
    skip_visual_tokens,
)

__all__ = [
    "LayerTransplant",
    "ProbeResult",
    "TaskData",
    "ablate_visual_tokens",
    "decoder_layers",
    "knockout_visual_attention",
    "layer_windows",
    "make_task",
    "probe_accuracy",
    "score_items",
    "skip_visual_tokens",
    "task_from_labels",
    "transfer_accuracy",
]
