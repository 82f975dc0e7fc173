"""Layer-selective fine-tuning: choose a window of decoder blocks from the measurements, train it.

- :mod:`~geomalign.tuning.selection`: a contiguous window of layers from a per-layer curve (ID
  profile peak +- a width, the abstraction phase itself, or a threshold run of an alignment
  curve), and early/late/random windows of the same size to compare it with;
- :mod:`~geomalign.tuning.freezing`: train only chosen decoder blocks (projector, embeddings,
  head optional) of a Hugging Face VLM, and count what trains per part;
- :mod:`~geomalign.tuning.lora`: LoRA adapters on a window of blocks only (needs peft);
- :mod:`~geomalign.tuning.training`: the training loop (:func:`train_model`: next-token training
  of whatever parameters require gradients);
- :mod:`~geomalign.tuning.compare`: stage-2 fine-tuning of the testbed, full vs the window vs
  the reference windows, with wall time, trainable parameters and held-out accuracy (needs the
  ``hf`` extra; imported on first use, so that the rest works without transformers); its typed
  result :class:`WindowComparison` (:mod:`~geomalign.tuning.comparison`) needs only the core;
- :mod:`~geomalign.tuning.instruct_data`, :mod:`~geomalign.tuning.instruct_encoding`: LLaVA
  conversation files and plain (image, prompt, response) rows, encoded with labels on the
  responses only;
- :mod:`~geomalign.tuning.windows`, :mod:`~geomalign.tuning.trainer`: full, block-window or
  LoRA-window fine-tuning of any checkpoint with the Hugging Face ``Trainer`` (one process, DDP
  or FSDP), its costs measured (:mod:`~geomalign.tuning.costs`) and its held-out scores before
  and after (:mod:`~geomalign.tuning.instruct_eval`);
- :mod:`~geomalign.tuning.window_runs`: equal-step runs of several kinds over seeds, as a table
  and a figure.

>>> from geomalign.tuning import select_window
>>> select_window([4.0, 7.0, 12.0, 9.0, 8.0, 5.0, 4.0], width=2).blocks
range(1, 3)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from geomalign.tuning.comparison import FinetuneRun, WindowComparison, WindowSummary
from geomalign.tuning.costs import CostMeter, Costs
from geomalign.tuning.freezing import (
    PARTS,
    TrainableParameters,
    set_trainable,
    trainable_parameters,
)
from geomalign.tuning.instruct_data import Conversation, Turn, load_instructions
from geomalign.tuning.instruct_encoding import InstructionCollator, InstructionDataset
from geomalign.tuning.instruct_eval import evaluate_instructions
from geomalign.tuning.lora import lora_window
from geomalign.tuning.selection import (
    RULES,
    LayerWindow,
    curve_from_table,
    reference_windows,
    select_window,
)
from geomalign.tuning.trainer import FinetuneResult, finetune, save_model
from geomalign.tuning.training import TrainingResult, train_model
from geomalign.tuning.window_runs import (
    RunComparison,
    RunSummary,
    compare_runs,
    count_blocks,
    load_checkpoint,
)
from geomalign.tuning.windows import PreparedModel, parse_window, prepare_window

if TYPE_CHECKING:
    from geomalign.tuning.compare import compare_windows

# Names of the module that needs transformers and the testbed.
_COMPARE_NAMES = frozenset({"compare_windows"})


def __getattr__(name: str) -> object:
    if name in _COMPARE_NAMES:
        return getattr(importlib.import_module("geomalign.tuning.compare"), name)
    raise AttributeError(f"module 'geomalign.tuning' has no attribute {name!r}")


__all__ = [
    "PARTS",
    "RULES",
    "Conversation",
    "CostMeter",
    "Costs",
    "FinetuneResult",
    "FinetuneRun",
    "InstructionCollator",
    "InstructionDataset",
    "LayerWindow",
    "PreparedModel",
    "RunComparison",
    "RunSummary",
    "TrainableParameters",
    "TrainingResult",
    "Turn",
    "WindowComparison",
    "WindowSummary",
    "compare_runs",
    "compare_windows",
    "count_blocks",
    "curve_from_table",
    "evaluate_instructions",
    "finetune",
    "load_checkpoint",
    "load_instructions",
    "lora_window",
    "parse_window",
    "prepare_window",
    "reference_windows",
    "save_model",
    "select_window",
    "set_trainable",
    "train_model",
    "trainable_parameters",
]
