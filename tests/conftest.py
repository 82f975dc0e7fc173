"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from geomalign.store import ActivationStore


@pytest.fixture(autouse=True)
def _single_threaded():
    """One torch and one BLAS thread per test.

    The suite runs one worker per core (``-n 2``) on small arrays and tiny models, where more
    threads per worker only contend. Tests of threaded code raise the count themselves.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def tiny_store(tmp_path):
    """A complete store: 2 checkpoints x image/text x mean pooling, 3 layers, 40 samples."""
    rng = np.random.default_rng(0)
    ids = [f"img{i:03d}" for i in range(40)]
    path = tmp_path / "tiny.h5"
    with ActivationStore.create(
        path, ids, captions=[f"caption {i}" for i in range(40)], labels={"colour": ["red"] * 40}
    ) as store:
        for ckpt in ("base", "tuned"):
            store.add_checkpoint(ckpt, model=f"toy/{ckpt}", n_layers=2, hidden_size=8)
            for modality in ("image", "text"):
                store.create_view(ckpt, modality, "mean", layers=[0, 1, 2], dim=8)
                store.write(ckpt, modality, "mean", np.arange(40), rng.normal(size=(3, 40, 8)))
    return path
