"""geomalign: representation geometry of vision-language models."""

from geomalign._version import __version__

__all__ = ["__version__"]
