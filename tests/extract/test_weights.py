"""The weights fingerprint recorded with a checkpoint, and the refusal to resume other weights."""

from __future__ import annotations

import pytest
import torch

from geomalign.data import PairedDataset
from geomalign.extract import EncodedBatch, ModuleAdapter, extract
from geomalign.extract._weights import weights_fingerprint
from geomalign.store import ActivationStore, StoreError


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(10, 4)
        self.block = torch.nn.Linear(4, 4)

    def forward(self, input_ids):
        return (self.block(self.embed(input_ids)),)


def _adapter(net: _Net) -> ModuleAdapter:
    def encode(modality, captions):
        ids = torch.tensor([[1, 2, 3]] * len(captions))
        return EncodedBatch({"input_ids": ids}, torch.ones_like(ids), torch.ones_like(ids))

    return ModuleAdapter(net, [net.embed, net.block], encode, hidden_size=4)


def test_fingerprint_follows_values_dtypes_and_names():
    net = _Net()
    same = _Net()
    assert weights_fingerprint(net) == weights_fingerprint(same)
    with torch.no_grad():
        same.block.bias[0] += 1e-6
    assert weights_fingerprint(net) != weights_fingerprint(same)
    assert weights_fingerprint(net) != weights_fingerprint(_Net().to(torch.float64))
    assert weights_fingerprint(net) != weights_fingerprint(
        torch.nn.Sequential(net.embed, net.block)
    )


def test_resume_with_changed_weights_is_refused(tmp_path):
    pairs = PairedDataset(["a", "b", "c"], ["x", "y", "z"], source="three")
    net = _Net()
    options = {"checkpoint_name": "m", "poolings": "last", "progress": False}
    extract(_adapter(net), pairs, tmp_path / "s.h5", **options)
    with ActivationStore(tmp_path / "s.h5") as store:
        assert store.checkpoints()["m"]["weights_sha256"] == weights_fingerprint(net)
    assert extract(_adapter(net), pairs, tmp_path / "s.h5", **options).n_encoded == 0
    with torch.no_grad():
        net.block.weight[0, 0] += 0.5
    with pytest.raises(StoreError, match=r"'m' exists with other provenance \(weights_sha256: "):
        extract(_adapter(net), pairs, tmp_path / "s.h5", **options)
