"""Paired image/caption datasets."""

from geomalign.data._pairs import Pair, PairedDataset
from geomalign.data.coco import load_coco_captions
from geomalign.data.folder import load_folder
from geomalign.data.hf_datasets import from_hf_dataset
from geomalign.data.load import load_pairs
from geomalign.data.shapes import ShapesWorld, make_shapes

__all__ = [
    "Pair",
    "PairedDataset",
    "ShapesWorld",
    "from_hf_dataset",
    "load_coco_captions",
    "load_folder",
    "load_pairs",
    "make_shapes",
]
