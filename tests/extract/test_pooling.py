"""Pooling on hand-made hidden states, and the forward hooks of the generic adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomalign.extract import EncodedBatch, ModuleAdapter
from geomalign.extract._pooling import pool, sample_seed, token_positions


def _batch(mask_rows, region_rows):
    mask = torch.tensor(mask_rows, dtype=torch.bool)
    return EncodedBatch({}, mask, torch.tensor(region_rows, dtype=torch.bool))


@pytest.fixture
def toy():
    """Two layers of (3 samples, 5 positions, 2 dims) states with known values."""
    base = torch.arange(30, dtype=torch.float32).reshape(3, 5, 2)
    batch = _batch(
        [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]],  # right, none and left padding
        [[0, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 1, 0, 0]],
    )
    return [base, 10 * base], batch


def test_mean_last_none(toy):
    states, batch = toy
    rows = torch.arange(3)
    mean = pool(states, batch, "mean", rows)
    assert mean.shape == (2, 3, 2)
    np.testing.assert_allclose(mean[0, 0], states[0][0, 1:3].mean(0))
    np.testing.assert_allclose(mean[1, 1], states[1][1, 3:5].mean(0))
    np.testing.assert_allclose(mean[0, 2], states[0][2, 2])
    last = pool(states, batch, "last", rows)
    np.testing.assert_allclose(last[0], states[0][[0, 1, 2], [3, 4, 4]])
    tokens = pool(states, batch, "none", rows)
    assert tokens.shape == (2, 5, 2)  # 2 + 2 + 1 region tokens, in row order
    np.testing.assert_allclose(tokens[1, :2], states[1][0, 1:3])
    np.testing.assert_allclose(tokens[1, 4], states[1][2, 2])
    # a subset of rows, in the order asked
    np.testing.assert_allclose(
        pool(states, batch, "mean", torch.tensor([2, 0]))[0], mean[0, [2, 0]]
    )
    with pytest.raises(ValueError, match=r"pooling must be one of .*got 'max'"):
        pool(states, batch, "max", rows)


def test_random_token_is_seeded_per_sample(toy):
    states, batch = toy
    seeds = [sample_seed(0, f"s{i}") for i in range(3)]
    first = token_positions(batch, "random", torch.arange(3), seeds)
    assert first[0] in (1, 2)
    assert first[1] in (3, 4)
    assert first[2] == 2
    # the same sample gets the same token in any batch, at any row
    alone = token_positions(batch, "random", torch.tensor([1]), seeds[1:2])
    assert alone[0] == first[1]
    assert sample_seed(0, "s1") == seeds[1]
    assert sample_seed(1, "s1") != seeds[1]
    pooled = pool(states, batch, "random", torch.arange(3), seeds=seeds)
    np.testing.assert_allclose(pooled[1], states[1][torch.arange(3), first])


def test_seeds_spread_over_the_region():
    batch = _batch([[1] * 8], [[1] * 8])
    picks = {
        int(token_positions(batch, "random", torch.tensor([0]), [sample_seed(0, str(i))])[0])
        for i in range(200)
    }
    assert picks == set(range(8))


def test_encoded_batch_checks():
    with pytest.raises(ValueError, match=r"must both have shape \(batch, seq\)"):
        _batch([[1, 1]], [[1, 1, 1]])
    with pytest.raises(ValueError, match="marks padding positions"):
        _batch([[1, 0]], [[1, 1]])


class _Net(torch.nn.Module):
    def __init__(self, fail=False, twice=False):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
        self.fail, self.twice = fail, twice

    def forward(self, input_ids):
        h = self.embed(input_ids)
        for block in self.blocks:
            h = block(h)
        if self.twice:
            h = self.blocks[1](h)
        if self.fail:
            raise RuntimeError("boom")
        return (h,)


def _adapter(net):
    def encode(modality, captions):
        ids = torch.tensor([[1, 2, 3]] * len(captions))
        return EncodedBatch({"input_ids": ids}, torch.ones_like(ids), torch.ones_like(ids))

    return ModuleAdapter(net, [net.embed, *net.blocks], encode, hidden_size=4)


def _hook_count(net):
    return sum(len(m._forward_hooks) for m in net.modules())


def test_hooks_capture_the_layers_and_are_removed():
    net = _Net()
    adapter = _adapter(net)
    batch = adapter.encode("text", ["a", "b"])
    states = adapter.hidden_states(batch, [0, 2])
    ids = batch.inputs["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(states[0], net.embed(ids))
        torch.testing.assert_close(states[1], net(ids)[0])
    assert _hook_count(net) == 0
    assert adapter.provenance() == {"model": "_Net", "architecture": "_Net", "dtype": "float32"}


def test_hooks_are_removed_when_the_forward_raises():
    net = _Net(fail=True)
    adapter = _adapter(net)
    with pytest.raises(RuntimeError, match="boom"):
        adapter.hidden_states(adapter.encode("text", ["a"]), [0, 1, 2])
    assert _hook_count(net) == 0


def test_hook_adapter_checks():
    net = _Net(twice=True)
    adapter = _adapter(net)
    with pytest.raises(ValueError, match=r"layer 2 \(Linear\) ran 2 times in one forward pass"):
        adapter.hidden_states(adapter.encode("text", ["a"]), [2])
    assert _hook_count(net) == 0
    adapter.hidden_states(adapter.encode("text", ["a"]), [0, 1])  # the others are fine
    with pytest.raises(ValueError, match=r"layers\[1\] \(Linear\) is not a module of model"):
        ModuleAdapter(net, [net.embed, torch.nn.Linear(4, 4)], None, hidden_size=4)
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        ModuleAdapter(net, [net.embed], None, hidden_size=0)
    with pytest.raises(ValueError, match="modalities must be among"):
        ModuleAdapter(net, [net.embed], None, hidden_size=4, modalities=["audio"])
    with pytest.raises(ValueError, match=r"expected \(batch, seq, hidden_size\) = \(1, 3, 8\)"):
        ModuleAdapter(net, [net.embed], adapter._encode, hidden_size=8).hidden_states(
            adapter.encode("text", ["a"]), [0]
        )
    bad = ModuleAdapter(net, [net.embed], lambda m, c: "nope", hidden_size=4)
    with pytest.raises(TypeError, match="encode must return an EncodedBatch; got str"):
        bad.encode("text", ["a"])
