"""Activations in and out of a store: files made by other tools, and files for them.

:func:`import_activations` writes NumPy ``.npy``/``.npz``, safetensors (one file or one per layer,
as the LLaVA representation study stores them), ``torch.save`` files (platonic-rep's ``feats``,
loaded with ``weights_only=True``) and Hugging Face datasets / Arrow shards (SAELens-style caches)
into a store view with provenance, through the store's public API. :func:`export_view` writes a
view back out as safetensors or NumPy files.
"""

from geomalign.interchange._sources import FORMATS
from geomalign.interchange.exporter import EXPORT_FORMATS, export_view
from geomalign.interchange.importer import import_activations, open_source

__all__ = ["EXPORT_FORMATS", "FORMATS", "export_view", "import_activations", "open_source"]
