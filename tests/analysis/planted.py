"""A store with planted structure: which layers align, route and peak is known by construction."""

from __future__ import annotations

import numpy as np
from scipy.stats import ortho_group

from geomalign.store import ActivationStore

N_SAMPLES = 160
DIM = 16
LAYERS = list(range(6))
# Intrinsic dimension of every image layer, per checkpoint: a peak at layer 3 (base), 4 (tuned).
ID_BASE = [2, 3, 6, 12, 5, 2]
ID_TUNED = [2, 3, 4, 6, 12, 3]
# text layer -> image layer it is an exact rotation of (all other text layers are independent).
ROUTES_BASE = {2: 2, 4: 1}
ROUTES_TUNED = {2: 2, 3: 3, 4: 4}
# Tuned image layers that are exact rotations of the base image layer (the rest are new).
KEPT_BY_TUNING = [0, 1, 2]


def _cloud(rng: np.random.Generator, d: int) -> np.ndarray:
    """N_SAMPLES Gaussian points on a random d-dimensional subspace of R^DIM."""
    basis = ortho_group.rvs(DIM, random_state=rng)[:d]
    return rng.normal(size=(N_SAMPLES, d)) @ basis


def _rotate(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return X @ ortho_group.rvs(DIM, random_state=rng)


def planted_layers(seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """(checkpoint, modality) -> array (n_layers, N_SAMPLES, DIM) with the planted structure."""
    rng = np.random.default_rng(seed)
    image_base = [_cloud(rng, d) for d in ID_BASE]
    image_tuned = [
        _rotate(image_base[layer], rng) if layer in KEPT_BY_TUNING else _cloud(rng, d)
        for layer, d in enumerate(ID_TUNED)
    ]
    out = {}
    for ckpt, image, routes in (
        ("base", image_base, ROUTES_BASE),
        ("tuned", image_tuned, ROUTES_TUNED),
    ):
        text = [
            _rotate(image[routes[layer]], rng) if layer in routes else _cloud(rng, 8)
            for layer in LAYERS
        ]
        out[ckpt, "image"] = np.stack(image)
        out[ckpt, "text"] = np.stack(text)
    return out


def write_planted(path, seed: int = 0) -> None:
    ids = [f"s{i:04d}" for i in range(N_SAMPLES)]
    with ActivationStore.create(path, ids, captions=[f"caption {i}" for i in ids]) as store:
        for (ckpt, modality), data in planted_layers(seed).items():
            store.add_checkpoint(
                ckpt, model=f"planted/{ckpt}", n_layers=len(LAYERS), hidden_size=DIM
            )
            store.create_view(ckpt, modality, "mean", layers=LAYERS, dim=DIM, dtype="float32")
            store.write(ckpt, modality, "mean", np.arange(N_SAMPLES), data)
