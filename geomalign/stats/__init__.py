"""Statistics shared by every analysis: resampling schemes, nulls, p-values, intervals.

One rule for each thing, used by every module that reports a confidence interval or a p-value:

- resampling: :func:`resample_indices` (the bootstrap, or half-sampling for statistics that a
  repeated row distorts) and :func:`cluster_bootstrap` / :func:`cluster_means` (whole groups of
  items, e.g. all questions about one image);
- nulls: :func:`permutation_null`, :func:`sign_flip_null` and :func:`max_null` (the null of the
  best of several statistics, e.g. the best-matching layer); :func:`sign_flip_p_value`, the
  paired test of item differences with whole groups flipped together;
- p-values: :func:`p_value`, add-one with a stated alternative;
- intervals: :func:`interval`, the percentile interval of the resamples centred on the estimate,
  and :func:`mean_interval`, the t-interval of a mean over independent replicates (seeds);
- multiple comparisons: :func:`holm`, :func:`benjamini_hochberg`, :func:`max_t_adjusted` (and
  :func:`standardised_max_t` for statistics on different scales), and
  :func:`adjust` (one of :data:`CORRECTIONS` by name); the resolution of add-one p-values,
  :func:`p_value_floor` and :func:`draws_needed`;
- for registered measures: :func:`permutation_test`, :func:`bootstrap_ci` and
  :func:`resampled_values` (a measure on many resamples at once).
"""

from geomalign.stats._intervals import centred_resamples, interval, mean_interval
from geomalign.stats._measures import (
    BootstrapResult,
    PermutationResult,
    bootstrap_ci,
    permutation_test,
    resampled_values,
)
from geomalign.stats._multiple import (
    CORRECTIONS,
    adjust,
    benjamini_hochberg,
    draws_needed,
    holm,
    max_t_adjusted,
    p_value_floor,
    standardised_max_t,
)
from geomalign.stats._resampling import (
    RESAMPLINGS,
    Grouping,
    cluster_bootstrap,
    cluster_means,
    resample_indices,
    resample_size,
)
from geomalign.stats._tests import (
    ALTERNATIVES,
    max_null,
    p_value,
    permutation_null,
    sign_flip_null,
    sign_flip_p_value,
)

__all__ = [
    "ALTERNATIVES",
    "CORRECTIONS",
    "RESAMPLINGS",
    "BootstrapResult",
    "Grouping",
    "PermutationResult",
    "adjust",
    "benjamini_hochberg",
    "bootstrap_ci",
    "centred_resamples",
    "cluster_bootstrap",
    "cluster_means",
    "draws_needed",
    "holm",
    "interval",
    "max_null",
    "max_t_adjusted",
    "mean_interval",
    "p_value",
    "p_value_floor",
    "permutation_null",
    "permutation_test",
    "resample_indices",
    "resample_size",
    "resampled_values",
    "sign_flip_null",
    "sign_flip_p_value",
    "standardised_max_t",
]
