"""Fixtures of the analysis tests."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_limits

from .planted import write_planted


@pytest.fixture(autouse=True)
def _single_threaded():
    """The planted arrays are tiny: one thread is fastest and leaves the other core to others."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory):
    """Path of a complete planted store (base, tuned) x (image, text) x mean, layers 0..5."""
    path = tmp_path_factory.mktemp("planted") / "planted.h5"
    write_planted(path)
    return path
