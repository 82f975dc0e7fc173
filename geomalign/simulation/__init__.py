"""Simulation-based calibration: populations with known truth, and studies drawn from them.

:mod:`geomalign.simulation.populations` holds the populations (paired Gaussian views with a
closed-form linear CKA, planted per-layer profiles, flat tori of known intrinsic dimension);
:mod:`geomalign.simulation.studies` runs each analysis that reports a p-value or an interval on
data drawn from them, and :func:`run_studies` turns repeated studies into false-positive rates,
coverages and powers with their Monte-Carlo error. ``benchmarks/calibration_bench.py`` runs the
full table.
"""

from geomalign.simulation.populations import GaussianViews, LayeredViews, torus
from geomalign.simulation.studies import (
    LEVELS,
    Rate,
    best_match_study,
    cross_modal_study,
    curve_family_study,
    effect_study,
    id_profile_study,
    probe_study,
    run_studies,
    tuning_change_family_study,
    tuning_change_study,
)

__all__ = [
    "LEVELS",
    "GaussianViews",
    "LayeredViews",
    "Rate",
    "best_match_study",
    "cross_modal_study",
    "curve_family_study",
    "effect_study",
    "id_profile_study",
    "probe_study",
    "run_studies",
    "torus",
    "tuning_change_family_study",
    "tuning_change_study",
]
