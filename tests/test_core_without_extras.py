"""The core works without the optional extras: transformers (and peft) blocked in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("transformers", "peft"):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Blocked())

    import numpy as np
    import torch
    from PIL import Image
    from torch import nn

    import geomalign
    from geomalign import metrics, stats
    from geomalign.analysis import Calibration, analyze_store
    from geomalign.data import PairedDataset
    from geomalign.extract import EncodedBatch, ModuleAdapter, extract
    from geomalign.store import ActivationStore
    from geomalign.tuning import FinetuneRun, WindowComparison, select_window

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    assert abs(metrics.cka(X, 2 * X) - 1.0) < 1e-9
    null = stats.permutation_test("cka-linear", X, X, n_permutations=9, random_state=0)
    assert null.p_value == 0.1

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(2))

        def forward(self, input_ids):
            h = self.embed(input_ids)
            for block in self.blocks:
                h = torch.tanh(block(h))
            return h

    def encode(modality, items):
        if modality == "image":
            ids = [np.asarray(image, dtype=np.int64).reshape(-1)[:4] % 50 for image in items]
        else:
            ids = [np.array([len(word) for word in caption.split()][:4]) for caption in items]
        ids = torch.as_tensor(np.stack([np.resize(i, 4) for i in ids]))
        mask = torch.ones_like(ids, dtype=torch.bool)
        return EncodedBatch({"input_ids": ids}, mask, mask)

    torch.manual_seed(0)
    model = Tiny()
    adapter = ModuleAdapter(
        model, [model.embed, *model.blocks], encode, hidden_size=8, modalities=("image", "text")
    )
    n = 24
    images = [rng.integers(0, 255, size=(2, 2, 3), dtype=np.uint8) for _ in range(n)]
    words = ["a", "red", "circle", "beside", "square", "blue"]
    pairs = PairedDataset(
        [f"s{i}" for i in range(n)],
        [" ".join(rng.choice(words, size=4)) for _ in range(n)],
        lambda i: Image.fromarray(images[i]),
    )
    path = sys.argv[1]
    extract(adapter, pairs, path, checkpoint_name="tuned", poolings=["mean"], progress=False)
    with ActivationStore(path) as store:
        assert store.read("tuned", "text", "mean", layer=2).shape == (n, 8)
    table = analyze_store(path, measures=["cka-linear"], calibration=Calibration(n_resamples=4))
    assert len(table.select(analysis="cross-modal")) == 3
    assert select_window([4.0, 7.0, 12.0, 9.0, 8.0, 5.0, 4.0], width=2).blocks == range(1, 3)
    runs = tuple(
        FinetuneRun(name, blocks, 0, 1, time, time, size, {"qa_accuracy": 0.5})
        for name, blocks, time, size in (("full", (0, 1), 2.0, 10), ("selected", (1,), 1.0, 5))
    )
    comparison = WindowComparison(runs=runs, n_blocks=2, base="base")
    assert [row.time_pct_mean for row in comparison.summary()] == [100.0, 50.0]
    for name in geomalign.__all__:  # the top-level entry points, transformers still blocked
        getattr(geomalign, name)
    assert geomalign.analyze_store is analyze_store
    assert "transformers" not in sys.modules
    print("core ok")
    """
)


def test_core_imports_and_works_without_transformers(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "acts.h5")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("core ok")
