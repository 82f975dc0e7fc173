"""Activations made elsewhere into a store and back out: NumPy, safetensors, torch, Arrow."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from geomalign.analysis import analyze_store
from geomalign.cli import main
from geomalign.interchange import export_view, import_activations
from geomalign.store import ActivationStore, StoreError

N, L, D = 24, 4, 8


@pytest.fixture
def feats():
    return np.random.default_rng(0).standard_normal((N, L, D)).astype(np.float32)


def _read_all(path, checkpoint, modality="text", pooling="mean"):
    with ActivationStore(path) as store:
        info = store.view_info(checkpoint, modality, pooling)
        assert info.complete
        return info.layers, np.stack(
            [store.read(checkpoint, modality, pooling, layer) for layer in info.layers]
        )


class _Payload:  # a class: unpickling it would run code
    pass


def test_platonic_rep_torch_file(feats, tmp_path):
    path = tmp_path / "feats.pt"
    torch.save({"feats": torch.from_numpy(feats), "num_params": 7}, path)
    info = import_activations(
        path, tmp_path / "a.h5", checkpoint="llm", modality="text", pooling="mean"
    )
    assert (info.layers, info.n_samples, info.dim) == (list(range(L)), N, D)
    _layers, data = _read_all(tmp_path / "a.h5", "llm")
    np.testing.assert_array_equal(data, feats.transpose(1, 0, 2))
    with ActivationStore(tmp_path / "a.h5") as store:
        facts = store.checkpoints()["llm"]
        assert store.sample_ids == [str(i) for i in range(N)]
    assert facts["import_format"] == "torch"
    assert facts["source_dtype"] == "float32"
    assert facts["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert facts["model"] == f"imported from {path}"


def test_torch_file_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"feats": torch.zeros(2, 1, 3), "payload": _Payload()}, path)
    with pytest.raises(ValueError, match=r"evil\.pt: .*refusing to unpickle code"):
        import_activations(path, tmp_path / "a.h5", checkpoint="x", modality="text", pooling="m")
    assert not (tmp_path / "a.h5").exists()


def test_safetensors_one_file_per_layer_and_one_file(feats, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "study"
    folder.mkdir()
    half = torch.from_numpy(feats).half()
    for layer in range(L):  # the study's layout: float16 (N, D) per layer, layer 0 = embeddings
        save_file(
            {f"layer_{layer}": half[:, layer].contiguous()}, folder / f"layer_{layer}.safetensors"
        )
    import_activations(folder, tmp_path / "a.h5", checkpoint="s", modality="joint", pooling="last")
    layers, data = _read_all(tmp_path / "a.h5", "s", "joint", "last")
    assert layers == list(range(L))
    np.testing.assert_array_equal(data, half.float().numpy().transpose(1, 0, 2))
    bf16 = torch.from_numpy(feats).bfloat16()
    one = tmp_path / "all.safetensors"
    save_file({f"layer_{2 * k}": bf16[:, k].contiguous() for k in range(L)}, one)
    import_activations(one, tmp_path / "b.h5", checkpoint="s", modality="text", pooling="mean")
    layers, data = _read_all(tmp_path / "b.h5", "s")
    assert layers == [0, 2, 4, 6]
    np.testing.assert_array_equal(data, bf16.float().numpy().transpose(1, 0, 2))  # lossless
    with ActivationStore(tmp_path / "b.h5") as store:
        assert store.checkpoints()["s"]["source_dtype"] == "bfloat16"


def test_npy_stack_npz_layers_and_ids(feats, tmp_path):
    stack = feats.transpose(1, 0, 2).copy()
    np.save(tmp_path / "stack.npy", stack)
    import_activations(
        tmp_path / "stack.npy",
        tmp_path / "a.h5",
        checkpoint="n",
        modality="text",
        pooling="mean",
        layers=[0, 8, 16, 24],
        working_memory=0.001,  # one row per block
    )
    layers, data = _read_all(tmp_path / "a.h5", "n")
    assert layers == [0, 8, 16, 24]
    np.testing.assert_array_equal(data, stack)
    np.save(tmp_path / "nld.npy", feats)
    import_activations(
        tmp_path / "nld.npy",
        tmp_path / "a.h5",
        checkpoint="m",
        modality="text",
        pooling="mean",
        layout="samples-first",
    )
    np.testing.assert_array_equal(_read_all(tmp_path / "a.h5", "m")[1], stack)
    with pytest.raises(ValueError, match=r"holds 4 layers but 2 layer numbers were given"):
        import_activations(
            tmp_path / "stack.npy",
            tmp_path / "c.h5",
            checkpoint="n",
            modality="text",
            pooling="mean",
            layers=[0, 1],
        )
    ids = np.array([f"img{i}" for i in range(N)])
    np.savez(tmp_path / "layers.npz", ids=ids, layer_3=stack[1], layer_1=stack[0])
    import_activations(
        tmp_path / "layers.npz", tmp_path / "d.h5", checkpoint="z", modality="image", pooling="mean"
    )
    layers, data = _read_all(tmp_path / "d.h5", "z", "image")
    assert layers == [1, 3]
    np.testing.assert_array_equal(data, stack[:2])
    with ActivationStore(tmp_path / "d.h5") as store:
        assert store.sample_ids == ids.tolist()


def test_arrow_saelens_style_cache(feats, tmp_path):
    datasets = pytest.importorskip("datasets")
    table = {f"blocks.{b}.hook_resid_post": feats[:, b].tolist() for b in range(L - 1)}
    table["token_id"] = list(range(N))
    datasets.Dataset.from_dict(table).save_to_disk(str(tmp_path / "cache"))
    import_activations(
        tmp_path / "cache", tmp_path / "a.h5", checkpoint="sae", modality="text", pooling="none"
    )
    layers, data = _read_all(tmp_path / "a.h5", "sae", "text", "none")
    assert layers == [1, 2, 3]  # block b's output is layer b + 1
    np.testing.assert_allclose(data, feats[:, : L - 1].transpose(1, 0, 2), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("fmt", "name"), [("safetensors", "out"), ("npz", "o.npz"), ("npy", "o.npy")]
)
def test_export_round_trips(feats, tmp_path, fmt, name):
    path = tmp_path / "feats.pt"
    torch.save({"feats": torch.from_numpy(feats)}, path)
    ids = [f"s{i}" for i in range(N)]
    captions = [f"caption {i}" for i in range(N)]
    import_activations(
        path,
        tmp_path / "a.h5",
        checkpoint="c",
        modality="text",
        pooling="mean",
        sample_ids=ids,
        captions=captions,
        store_dtype="float16",
    )
    files = export_view(
        tmp_path / "a.h5", "c", "text", "mean", tmp_path / name, format=fmt, layers=[1, 3]
    )
    assert files
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        export_view(tmp_path / "a.h5", "c", "text", "mean", tmp_path / name, format=fmt)
    options = {"layers": [1, 3]} if fmt == "npy" else {}
    back = import_activations(
        tmp_path / name,
        tmp_path / "b.h5",
        checkpoint="c",
        modality="text",
        pooling="mean",
        sample_ids=None if fmt != "npy" else ids,
        **options,
    )
    assert back.layers == [1, 3]
    expected = feats[:, [1, 3]].astype(np.float16).astype(np.float32).transpose(1, 0, 2)
    np.testing.assert_array_equal(_read_all(tmp_path / "b.h5", "c")[1], expected)
    with ActivationStore(tmp_path / "b.h5") as store:
        assert store.sample_ids == ids
        if fmt != "npy":
            assert store.captions == captions


def test_imports_analyse_and_check_samples(feats, tmp_path):
    store = tmp_path / "a.h5"
    torch.save({"feats": torch.from_numpy(feats)}, tmp_path / "base.pt")
    tuned = feats + 0.1 * np.random.default_rng(1).standard_normal(feats.shape).astype(np.float32)
    torch.save({"feats": torch.from_numpy(tuned)}, tmp_path / "tuned.pt")
    for name in ("base", "tuned"):
        for modality in ("image", "text"):
            import_activations(
                tmp_path / f"{name}.pt", store, checkpoint=name, modality=modality, pooling="mean"
            )
    again = import_activations(
        tmp_path / "base.pt", store, checkpoint="base", modality="image", pooling="mean"
    )  # a complete view: nothing to do
    assert again.complete
    table = analyze_store(store, measures=["cka-linear"])
    cross = table.select(checkpoint="tuned", measure="cka-linear")
    assert len(cross) > 0
    assert np.isfinite(cross.column("value")).all()
    with pytest.raises(StoreError, match=r"sample ids differ: .* Import into another store"):
        import_activations(
            tmp_path / "base.pt",
            store,
            checkpoint="x",
            modality="text",
            pooling="mean",
            sample_ids=[f"other{i}" for i in range(N)],
        )
    with pytest.raises(ValueError, match=r"24 rows but 3 sample ids"):
        import_activations(
            tmp_path / "base.pt",
            tmp_path / "n.h5",
            checkpoint="x",
            modality="text",
            pooling="mean",
            sample_ids=["a", "b", "c"],
        )


def test_cli_import_and_export(feats, tmp_path, capsys):
    torch.save({"feats": torch.from_numpy(feats)}, tmp_path / "feats.pt")
    (tmp_path / "pairs.jsonl").write_text(
        "".join(json.dumps({"id": f"p{i}", "caption": f"c {i}"}) + "\n" for i in range(N))
    )
    argv = [
        "import",
        str(tmp_path / "feats.pt"),
        "--out",
        str(tmp_path / "a.h5"),
        "--checkpoint",
        "llm",
        "--view",
        "text/mean",
        "--data",
        str(tmp_path / "pairs.jsonl"),
    ]
    assert main(argv) == 0
    assert "llm/text/mean, 4 layers x 24 samples x 8" in capsys.readouterr().out
    with ActivationStore(tmp_path / "a.h5") as store:
        assert store.sample_ids[:2] == ["p0", "p1"]
        assert store.captions[1] == "c 1"
    out = tmp_path / "exported"
    assert (
        main(
            [
                "export",
                str(tmp_path / "a.h5"),
                "--checkpoint",
                "llm",
                "--view",
                "text/mean",
                "--out",
                str(out),
                "--layers",
                "0-1",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "layer_0.safetensors",
        "layer_1.safetensors",
        "samples.json",
    ]
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    assert (
        main(
            [
                "import",
                str(tmp_path / "bad.npy"),
                "--out",
                str(tmp_path / "b.h5"),
                "--checkpoint",
                "x",
                "--view",
                "text/mean",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("geomalign import: error:")
    assert "\n" not in err
