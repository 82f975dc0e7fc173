"""Fixtures of the analysis tests."""

from __future__ import annotations

import pytest

from .planted import write_planted


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory):
    """Path of a complete planted store (base, tuned) x (image, text) x mean, layers 0..5."""
    path = tmp_path_factory.mktemp("planted") / "planted.h5"
    write_planted(path)
    return path
