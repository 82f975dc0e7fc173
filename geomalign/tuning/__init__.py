"""Layer-selective fine-tuning: choose a window of decoder layers from the measurements, train it.

- :mod:`~geomalign.tuning.selection`: a contiguous window of layers from a per-layer curve (ID
  profile peak +- a width, the abstraction phase itself, or a threshold run of an alignment
  curve), and early/late/random windows of the same size to compare it with;
- :mod:`~geomalign.tuning.freezing`: train only chosen decoder blocks (projector, embeddings,
  head optional) of a Hugging Face VLM, and count what trains per part;
- :mod:`~geomalign.tuning.lora`: LoRA adapters on a window of blocks only (needs peft);
- :mod:`~geomalign.tuning.compare`: stage-2 fine-tuning of the testbed, full vs the window vs
  the reference windows, with wall time, trainable parameters and held-out accuracy.

>>> from geomalign.tuning import select_window
>>> select_window([4.0, 7.0, 12.0, 9.0, 8.0, 5.0, 4.0], width=2).blocks
range(1, 3)
"""

from geomalign.tuning.compare import (
    FinetuneRun,
    WindowComparison,
    WindowSummary,
    compare_windows,
)
from geomalign.tuning.freezing import (
    PARTS,
    TrainableParameters,
    set_trainable,
    trainable_parameters,
)
from geomalign.tuning.lora import lora_window
from geomalign.tuning.selection import (
    RULES,
    LayerWindow,
    curve_from_table,
    reference_windows,
    select_window,
)

__all__ = [
    "PARTS",
    "RULES",
    "FinetuneRun",
    "LayerWindow",
    "TrainableParameters",
    "WindowComparison",
    "WindowSummary",
    "compare_windows",
    "curve_from_table",
    "lora_window",
    "reference_windows",
    "select_window",
    "set_trainable",
    "trainable_parameters",
]
