"""Paired image/caption datasets."""

from geomalign.data._pairs import Pair, PairedDataset

__all__ = ["Pair", "PairedDataset"]
