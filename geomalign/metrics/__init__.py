"""Measures of representation geometry: pure functions of (n_samples, n_features) arrays.

Optional heavy dependencies (POT for optimal transport) are imported only inside the functions
that need them, so importing :mod:`geomalign.metrics` stays cheap.
"""

__all__: list[str] = []
