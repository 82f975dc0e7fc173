"""geomalign: representation geometry of vision-language models.

The main entry points, one per stage of the pipeline (pairs -> extract -> store -> metrics ->
analysis -> report), are available here; each subpackage holds the rest:

>>> import geomalign
>>> geomalign.metrics.cka  # doctest: +ELLIPSIS
<function cka at ...>

They are imported on first use, so ``import geomalign`` stays cheap and works without the
optional extras (the Hugging Face adapters and the testbed need transformers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from geomalign._version import __version__

if TYPE_CHECKING:
    from geomalign import analysis, data, extract, interventions, metrics, stats, store, tuning
    from geomalign.analysis import (
        Calibration,
        IDProfile,
        LayerCurve,
        LayerMap,
        ResultsTable,
        analyze_store,
        summarize,
    )
    from geomalign.data import PairedDataset, load_coco_captions, load_folder, make_shapes
    from geomalign.extract import ModuleAdapter, load_adapter
    from geomalign.metrics import Measure
    from geomalign.report import write_results
    from geomalign.store import ActivationStore, merge_stores
    from geomalign.tuning import select_window

# Subpackages, and the names taken from them (name -> (module, attribute)).
_SUBPACKAGES = (
    "analysis", "data", "extract", "interventions", "metrics", "stats", "store", "tuning",
)  # fmt: skip
_NAMES = {
    "ActivationStore": ("geomalign.store", "ActivationStore"),
    "Calibration": ("geomalign.analysis", "Calibration"),
    "IDProfile": ("geomalign.analysis", "IDProfile"),
    "LayerCurve": ("geomalign.analysis", "LayerCurve"),
    "LayerMap": ("geomalign.analysis", "LayerMap"),
    "Measure": ("geomalign.metrics", "Measure"),
    "ModuleAdapter": ("geomalign.extract", "ModuleAdapter"),
    "PairedDataset": ("geomalign.data", "PairedDataset"),
    "ResultsTable": ("geomalign.analysis", "ResultsTable"),
    "analyze_store": ("geomalign.analysis", "analyze_store"),
    "load_adapter": ("geomalign.extract", "load_adapter"),
    "load_coco_captions": ("geomalign.data", "load_coco_captions"),
    "load_folder": ("geomalign.data", "load_folder"),
    "make_shapes": ("geomalign.data", "make_shapes"),
    "merge_stores": ("geomalign.store", "merge_stores"),
    "select_window": ("geomalign.tuning", "select_window"),
    "summarize": ("geomalign.analysis", "summarize"),
    "write_results": ("geomalign.report", "write_results"),
}

__all__ = [
    "ActivationStore",
    "Calibration",
    "IDProfile",
    "LayerCurve",
    "LayerMap",
    "Measure",
    "ModuleAdapter",
    "PairedDataset",
    "ResultsTable",
    "__version__",
    "analysis",
    "analyze_store",
    "data",
    "extract",
    "interventions",
    "load_adapter",
    "load_coco_captions",
    "load_folder",
    "make_shapes",
    "merge_stores",
    "metrics",
    "select_window",
    "stats",
    "store",
    "summarize",
    "tuning",
    "write_results",
]


def __getattr__(name: str) -> object:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"geomalign.{name}")
    if name in _NAMES:
        module, attribute = _NAMES[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'geomalign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
