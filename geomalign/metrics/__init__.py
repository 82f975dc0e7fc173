"""Measures of representation geometry: pure functions of (n_samples, n_features) arrays.

Optional heavy dependencies (POT for optimal transport) are imported only inside the functions
that need them, so importing :mod:`geomalign.metrics` stays cheap. Permutation tests and bootstrap
intervals of registered measures are in :mod:`geomalign.stats`.
"""

from geomalign.metrics._cka_stream import StreamingLinearCKA
from geomalign.metrics._device import check_device, on_device
from geomalign.metrics._errors import UndefinedMeasureError
from geomalign.metrics._registry import Measure, available, get, register, resolve
from geomalign.metrics.across_layers import LayerPairScore, best_layer_pair, outlier_clip_threshold
from geomalign.metrics.cka import cka, cka_matrix
from geomalign.metrics.cknna import cknna
from geomalign.metrics.correlation import distance_correlation, svcca
from geomalign.metrics.gap import modality_gap, modality_gap_distance
from geomalign.metrics.imbalance import (
    InformationImbalances,
    information_imbalance,
    information_imbalances,
)
from geomalign.metrics.intrinsic import (
    GrideScaling,
    IntrinsicDimension,
    gride_scaling,
    intrinsic_dimension,
)
from geomalign.metrics.knn import cycle_knn, mutual_knn
from geomalign.metrics.knn_order import edit_distance_knn, lcs_knn
from geomalign.metrics.ot import gromov_wasserstein, ot_distance, ot_matching_accuracy

__all__ = [
    "GrideScaling",
    "InformationImbalances",
    "IntrinsicDimension",
    "LayerPairScore",
    "Measure",
    "StreamingLinearCKA",
    "UndefinedMeasureError",
    "available",
    "best_layer_pair",
    "check_device",
    "cka",
    "cka_matrix",
    "cknna",
    "cycle_knn",
    "distance_correlation",
    "edit_distance_knn",
    "get",
    "gride_scaling",
    "gromov_wasserstein",
    "information_imbalance",
    "information_imbalances",
    "intrinsic_dimension",
    "lcs_knn",
    "modality_gap",
    "modality_gap_distance",
    "mutual_knn",
    "on_device",
    "ot_distance",
    "ot_matching_accuracy",
    "outlier_clip_threshold",
    "register",
    "resolve",
    "svcca",
]
