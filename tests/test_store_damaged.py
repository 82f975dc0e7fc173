"""Damaged and hostile stores, built here: each gives one StoreError line naming file and object.

No traceback, no hang (an external link to a FIFO is never opened), never a silent acceptance.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from geomalign.cli import main
from geomalign.store import ActivationStore, StoreError

VIEW = "checkpoints/ck/image/mean"


def _good(path):
    with ActivationStore.create(path, ["a", "b", "c"], captions=["x", "y", "z"]) as store:
        store.add_checkpoint("ck", model="toy")
        store.create_view("ck", "image", "mean", layers=[0, 2], dim=4, dtype="float32")
        store.create_view(
            "ck", "text", "none", layers=[1], dim=4, dtype="float32", tokens_per_sample=[1, 2, 1]
        )
        store.write("ck", "image", "mean", [0, 1, 2], np.ones((2, 3, 4)))


def _replace(f, name, data):
    del f[name]
    f[name] = data


DAMAGE = {
    "schema version 0": (lambda f: f.attrs.modify("schema_version", 0), "invalid schema_version 0"),
    "schema version -3": (lambda f: f.attrs.modify("schema_version", -3), "invalid schema_version"),
    "schema version 1.5": (
        lambda f: f.attrs.__setitem__("schema_version", 1.5),
        "invalid schema_version 1.5",
    ),
    "schema version text": (
        lambda f: f.attrs.__setitem__("schema_version", "2"),
        "invalid schema_version .2.",
    ),
    "no format": (lambda f: f.attrs.__delitem__("format"), "not a geomalign store"),
    "no ids": (lambda f: f.__delitem__("samples/ids"), "'/samples/ids' is missing"),
    "duplicate ids": (
        lambda f: _replace(f, "samples/ids", np.array([b"a", b"b", b"a"], dtype=object)),
        r"/samples/ids has duplicate sample ids 'a'",
    ),
    "numeric ids": (
        lambda f: _replace(f, "samples/ids", np.arange(3)),
        r"/samples/ids holds int64, expected strings",
    ),
    "2-D ids": (
        lambda f: _replace(f, "samples/ids", np.array([[b"a", b"b"]], dtype=object)),
        r"/samples/ids has 2 dimensions, expected 1",
    ),
    "short captions": (
        lambda f: _replace(f, "samples/captions", np.array([b"x"], dtype=object)),
        r"/samples/captions has 1 entries for 3 ids",
    ),
    "no checkpoints": (lambda f: f.__delitem__("checkpoints"), "'/checkpoints' is missing"),
    "checkpoint is a dataset": (
        lambda f: f["checkpoints"].create_dataset("zz", data=1),
        "/checkpoints/zz is not a group",
    ),
    "missing done": (lambda f: f.__delitem__(f"{VIEW}/done"), f"'/{VIEW}/done' is missing"),
    "missing data": (lambda f: f.__delitem__(f"{VIEW}/data"), f"'/{VIEW}/data' is missing"),
    "2-D data": (
        lambda f: _replace(f, f"{VIEW}/data", np.zeros((2, 3))),
        f"/{VIEW}/data has 2 dimensions, expected 3",
    ),
    "integer data": (
        lambda f: _replace(f, f"{VIEW}/data", np.zeros((2, 3, 4), dtype=np.int32)),
        f"/{VIEW}/data holds int32, expected float16 or float32",
    ),
    "no layers attribute": (
        lambda f: f[f"{VIEW}/data"].attrs.__delitem__("layers"),
        f"/{VIEW}/data needs a 'layers' attribute of 2",
    ),
    "layers shorter than data": (
        lambda f: f[f"{VIEW}/data"].attrs.__setitem__("layers", [0]),
        r"needs a 'layers' attribute of 2 .* got \[0\]",
    ),
    "negative layer": (
        lambda f: f[f"{VIEW}/data"].attrs.__setitem__("layers", [0, -1]),
        "distinct non-negative ints",
    ),
    "done value 7": (
        lambda f: f[f"{VIEW}/done"].__setitem__(0, 7),
        f"/{VIEW}/done holds values other than 0 and 1",
    ),
    "done of other length": (
        lambda f: _replace(f, f"{VIEW}/done", np.ones(60, dtype=np.uint8)),
        r"done is uint8 of shape \(60,\); expected uint8 of shape \(3,\)",
    ),
    "rows of other count": (
        lambda f: (
            _replace(f, f"{VIEW}/data", np.zeros((2, 5, 4), dtype=np.float32)),
            f[f"{VIEW}/data"].attrs.__setitem__("layers", [0, 2]),
        ),
        "data has 5 rows for 3 samples",
    ),
    "offsets not ending at the rows": (
        lambda f: _replace(f, "checkpoints/ck/text/none/offsets", np.array([0, 1, 2, 3])),
        "offsets must be 4 increasing ints from 0 to the 4 rows",
    ),
    "unknown dtype attribute": (
        lambda f: f[f"{VIEW}/data"].attrs.modify("dtype", "int4"),
        "dtype attribute 'int4'",
    ),
    "soft link": (
        lambda f: f["checkpoints"].__setitem__("zz", h5py.SoftLink("/samples")),
        "/checkpoints/zz is a SoftLink",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_store_is_refused_in_one_line(tmp_path, capsys, case):
    path = tmp_path / "bad.h5"
    _good(path)
    damage, message = DAMAGE[case]
    with h5py.File(path, "r+") as f:
        damage(f)
    for mode in ("r", "a"):
        with pytest.raises(StoreError, match=message) as error:
            ActivationStore(path, mode=mode)
        assert str(path) in str(error.value)
        assert "\n" not in str(error.value)
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert str(path) in err


def test_external_links_are_never_followed(tmp_path):
    path = tmp_path / "bad.h5"
    _good(path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would block forever
    other = tmp_path / "other.h5"
    _good(other)
    with h5py.File(path, "r+") as f:
        f["checkpoints/zz"] = h5py.ExternalLink(str(fifo), "/")
        f["checkpoints/ck/image/elsewhere"] = h5py.ExternalLink(str(other), "/" + VIEW)
    with pytest.raises(StoreError, match=r"bad\.h5: /checkpoints/\w+ is a ExternalLink"):
        ActivationStore(path)


def test_data_kept_in_other_files_is_refused(tmp_path):
    path = tmp_path / "bad.h5"
    _good(path)
    with h5py.File(path, "r+") as f:
        del f[f"{VIEW}/data"]
        f.create_dataset(
            f"{VIEW}/data", shape=(2, 3, 4), dtype="f4", external=[(str(tmp_path / "raw"), 0, 96)]
        )
    with pytest.raises(StoreError, match=f"/{VIEW}/data keeps its data in other files"):
        ActivationStore(path)


def test_a_reader_of_a_store_being_created_gets_no_half_file(tmp_path):
    # creation goes through a partial file renamed into place: before the rename there is no
    # store at all, and a reader gets a clear error, not a raw exception
    with pytest.raises(StoreError, match=r"new\.h5: no such file"):
        ActivationStore(tmp_path / "new.h5")
