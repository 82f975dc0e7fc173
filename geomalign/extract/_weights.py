"""A fingerprint of a model's weights, recorded with each extracted checkpoint."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["weights_fingerprint"]


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict: every entry's name, dtype, shape and bytes, in order.

    Parameters
    ----------
    model : torch.nn.Module
        The module whose weights (parameters and persistent buffers) produce the activations.

    Returns
    -------
    str
        64 hex digits. Equal for equal weights in the same dtype, whatever the device; any
        changed value, dtype, shape or name changes it. Tensors are copied to the CPU one at a
        time, so memory stays bounded by the largest one.

    Examples
    --------
    >>> weights_fingerprint(torch.nn.Linear(2, 2)) != weights_fingerprint(torch.nn.Linear(2, 2))
    True
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        flat = tensor.to("cpu").contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()
