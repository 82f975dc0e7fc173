"""Per-layer analyses of an activation store, written to one tidy results table.

Curves compare two views layer by layer (image vs caption of one checkpoint, base vs tuned of one
modality, and the change of the former with tuning); layer maps compare every layer of one view
with every layer of another; ID profiles give the intrinsic dimension per layer and the abstraction
phase. Every function returns a :class:`ResultsTable`; :func:`analyze_store` runs them all.
"""

from geomalign.analysis._views import View
from geomalign.analysis.curves import (
    compare_views,
    cross_checkpoint_curve,
    cross_modal_curve,
    default_pooling,
    tuning_change_curve,
)
from geomalign.analysis.effect_curves import EffectCurve, WindowEffect, effects_table
from geomalign.analysis.evaluation import Calibration
from geomalign.analysis.id_profile import (
    abstraction_phase,
    detect_abstraction_phase,
    id_profile,
)
from geomalign.analysis.layer_maps import layer_map, map_matrix, map_of
from geomalign.analysis.results import (
    AbstractionPhase,
    BestMatch,
    Estimate,
    IDProfile,
    LayerCurve,
    LayerMap,
)
from geomalign.analysis.run import analyze_store
from geomalign.analysis.seeds import Conclusion, roles_of, seed_conclusions, seed_spread
from geomalign.analysis.summary import summarize
from geomalign.analysis.table import COLUMNS, Result, ResultsTable

__all__ = [
    "COLUMNS",
    "AbstractionPhase",
    "BestMatch",
    "Calibration",
    "Conclusion",
    "EffectCurve",
    "Estimate",
    "IDProfile",
    "LayerCurve",
    "LayerMap",
    "Result",
    "ResultsTable",
    "View",
    "WindowEffect",
    "abstraction_phase",
    "analyze_store",
    "compare_views",
    "cross_checkpoint_curve",
    "cross_modal_curve",
    "default_pooling",
    "detect_abstraction_phase",
    "effects_table",
    "id_profile",
    "layer_map",
    "map_matrix",
    "map_of",
    "roles_of",
    "seed_conclusions",
    "seed_spread",
    "summarize",
    "tuning_change_curve",
]
