"""The README's walk-through, copied from the README text, on a folder of real images.

The pairs table and the commands are read from the README's "Your own images, step by step"
section; the images are scikit-image and scikit-learn sample photographs saved under the names
the table gives; the hub ids are replaced by tiny local models of the same families. Every
command must succeed, in order, from the folder holding the table.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_sample_image

from geomalign.cli import main
from geomalign.store import ActivationStore

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### Your own images, step by step"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n#", start + len(SECTION))
    return text[start:end]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def _image(name: str) -> Image.Image:
    if name in ("china", "flower"):
        array = load_sample_image(f"{name}.jpg")
    else:
        array = getattr(skdata, name)()
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    return Image.fromarray(array).convert("RGB").resize((40, 32))


def test_readme_walk_through(llava_dir, llava_base_dir, minilm_dir, tmp_path, monkeypatch):
    section = _section()
    [table] = _blocks(section, "json")
    rows = [json.loads(line) for line in table.splitlines()]
    (tmp_path / "images").mkdir()
    for row in rows:
        _image(Path(row["image"]).stem).save(tmp_path / row["image"])
    (tmp_path / "pairs.jsonl").write_text(table)
    hub = {
        "llava-hf/llava-1.5-7b-hf": str(llava_dir),
        "path/to/stage1": str(llava_base_dir),
        "sentence-transformers/all-MiniLM-L6-v2": str(minilm_dir),
    }
    commands = [line for line in _blocks(section, "sh")[0].splitlines() if line.strip()]
    assert len(commands) >= 6
    monkeypatch.chdir(tmp_path)
    for command in commands:
        argv = [hub.get(arg, arg) for arg in shlex.split(command)]
        assert argv[0] == "geomalign"
        assert main(argv[1:]) == 0, command
    with ActivationStore("acts.h5") as store:
        assert store.n_samples == len(rows) == 12
        assert store.labels["colour"].tolist() == [r["label_colour"] for r in rows]
        assert {c for c, _, _ in store.views()} == {"tuned", "base"}
        assert all(store.view_info(*view).complete for view in store.views())
    assert (tmp_path / "results" / "results.csv").stat().st_size > 0
    assert any((tmp_path / "probes").iterdir())
    assert any((tmp_path / "effects").iterdir())
    with ActivationStore("text.h5") as store:
        assert {m for _, m, _ in store.views()} == {"text"}
