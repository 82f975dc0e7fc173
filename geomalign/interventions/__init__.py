"""Probes and causal interventions on vision-language models.

- :mod:`~geomalign.interventions.transplant`: hybrids of a base and a tuned checkpoint with decoder
  blocks copied from the tuned one, made in place;
- :mod:`~geomalign.interventions.visual_tokens`: image-token skip, ablation and attention knockout
  through forward hooks;
- :mod:`~geomalign.interventions.probes`, :mod:`~geomalign.interventions.probe_curves`: linear
  probes and cross-modal probe transfer, on arrays or per layer of an activation store;
- :mod:`~geomalign.interventions.answers`, :mod:`~geomalign.interventions.cider`: scoring rules
  of generated text (VQA accuracy with the official answer normalisation, exact and relaxed
  match, CIDEr-D);
- :mod:`~geomalign.interventions.scoring`: per-item task scores (caption log-likelihood, answer
  exact match);
- :mod:`~geomalign.interventions.benchmarks`, :mod:`~geomalign.interventions.benchmark_layouts`:
  benchmark tasks (open-ended QA, multiple choice, captioning; image or text-only) from JSONL /
  CSV tables, datasets and the VQAv2 and COCO-QA layouts;
- :mod:`~geomalign.interventions.prompted`, :mod:`~geomalign.interventions.generation`: those
  tasks prompted for a model's processor and scored by greedy KV-cache decoding or option and
  caption log-likelihoods, batch-size independent;
- :mod:`~geomalign.interventions.tasks`: caption tasks from paired data, the testbed's held-out
  QA and caption sets;
- :mod:`~geomalign.interventions.curves`, :mod:`~geomalign.interventions.effects`: effect curves
  over layer windows, as rows of the results table (:class:`geomalign.analysis.ResultsTable`);
- :mod:`~geomalign.interventions.plotting`: figures of effect and probe curves.
"""

from geomalign._model_parts import decoder_blocks
from geomalign.interventions.answers import (
    exact_match,
    normalize_answer,
    relaxed_match,
    vqa_accuracy,
)
from geomalign.interventions.benchmark_layouts import load_coco_qa, load_task, load_vqav2
from geomalign.interventions.benchmarks import (
    Benchmark,
    benchmark_from_hf_dataset,
    load_benchmark,
)
from geomalign.interventions.cider import cider_d
from geomalign.interventions.curves import score_task, transplant_curve, visual_token_curve
from geomalign.interventions.effects import (
    ANALYSES,
    intervention_effects,
    load_checkpoint,
    run_effect_curves,
)
from geomalign.interventions.plotting import plot_effect_curves, plot_probe_curves
from geomalign.interventions.probe_curves import probe_curves
from geomalign.interventions.probes import ProbeResult, probe_accuracy, transfer_accuracy
from geomalign.interventions.prompted import PromptedTask, prompt_task
from geomalign.interventions.scoring import TaskData, make_task, score_items, task_from_labels
from geomalign.interventions.tasks import (
    LLAVA_CAPTION_TEMPLATE,
    caption_task,
    held_out_benchmarks,
    held_out_tasks,
)
from geomalign.interventions.transplant import LayerTransplant, block_windows
from geomalign.interventions.visual_tokens import (
    ablate_visual_tokens,
    knockout_visual_attention,
    skip_visual_tokens,
)

__all__ = [
    "ANALYSES",
    "LLAVA_CAPTION_TEMPLATE",
    "Benchmark",
    "LayerTransplant",
    "ProbeResult",
    "PromptedTask",
    "TaskData",
    "ablate_visual_tokens",
    "benchmark_from_hf_dataset",
    "block_windows",
    "caption_task",
    "cider_d",
    "decoder_blocks",
    "exact_match",
    "held_out_benchmarks",
    "held_out_tasks",
    "intervention_effects",
    "knockout_visual_attention",
    "load_benchmark",
    "load_checkpoint",
    "load_coco_qa",
    "load_task",
    "load_vqav2",
    "make_task",
    "normalize_answer",
    "plot_effect_curves",
    "plot_probe_curves",
    "probe_accuracy",
    "probe_curves",
    "prompt_task",
    "relaxed_match",
    "run_effect_curves",
    "score_items",
    "score_task",
    "skip_visual_tokens",
    "task_from_labels",
    "transfer_accuracy",
    "transplant_curve",
    "visual_token_curve",
    "vqa_accuracy",
]
