"""Package and on-disk format versions (the store's schema is versioned on its own)."""

__version__ = "0.1.0"
