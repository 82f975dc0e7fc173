"""Loaders of paired data: folder + JSONL/CSV, COCO captions, datasets.Dataset."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data as skdata

from geomalign.data import PairedDataset, from_hf_dataset, load_coco_captions, load_folder

SK_IMAGES = {"astronaut": skdata.astronaut, "coffee": skdata.coffee, "chelsea": skdata.chelsea}


def _drawn(colour: str) -> Image.Image:
    image = Image.new("RGB", (24, 20), "white")
    ImageDraw.Draw(image).ellipse((4, 4, 16, 16), fill=colour)
    return image


@pytest.fixture
def image_folder(tmp_path):
    """Five small images on disk: three photographs from scikit-image and two drawn ones."""
    folder = tmp_path / "images"
    folder.mkdir()
    images = {n: Image.fromarray(f()).resize((32, 24)) for n, f in SK_IMAGES.items()}
    images.update(red=_drawn("red"), blue=_drawn("blue"))
    for name, image in images.items():
        image.save(folder / f"{name}.png")
    return folder, images


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _rows(names):
    return [
        {"id": f"s{i}", "image": f"{n}.png", "caption": f"a picture of {n}", "label_score": i * 0.5}
        for i, n in enumerate(names)
    ]


# ---------------------------------------------------------------------------------------- folder
def test_jsonl_round_trip(image_folder, tmp_path):
    folder, images = image_folder
    table = folder / "pairs.jsonl"
    _write_jsonl(table, _rows(images))
    pairs = load_folder(table)
    assert isinstance(pairs, PairedDataset)
    assert pairs.ids == [f"s{i}" for i in range(5)]
    assert pairs.captions[2] == "a picture of chelsea"
    np.testing.assert_array_equal(pairs.labels["score"], [0.0, 0.5, 1.0, 1.5, 2.0])
    for i, name in enumerate(images):
        np.testing.assert_array_equal(np.asarray(pairs.image(i)), np.asarray(images[name]))
    assert pairs[3].labels == {"score": 1.5}


def test_csv_with_image_dir_and_typed_labels(image_folder, tmp_path):
    folder, images = image_folder
    table = tmp_path / "pairs.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "text", "label_count", "colour"])
        for i, name in enumerate(images):
            writer.writerow([f"{name}.png", f"caption {name}", i, name])
    pairs = load_folder(table, folder, id_column=None, image_column="file", caption_column="text")
    assert pairs.ids[0] == "astronaut.png"
    assert list(pairs.labels) == ["count"]  # "colour" is neither prefixed nor asked for
    assert pairs.labels["count"].dtype.kind == "i"
    assert pairs[4].image.size == (24, 20)
    only = load_folder(
        table,
        folder,
        id_column=None,
        image_column="file",
        caption_column="text",
        label_columns=["colour"],
    )
    assert list(only.labels) == ["colour"]
    assert only.labels["colour"][4] == "blue"


def test_missing_file_is_reported_up_front(image_folder):
    folder, images = image_folder
    rows = _rows(images)
    rows[3]["image"] = "absent.png"
    _write_jsonl(folder / "pairs.jsonl", rows)
    with pytest.raises(ValueError, match=r"1 of 5 image files do not exist: sample 's3'.*absent"):
        load_folder(folder / "pairs.jsonl")
    lazy = load_folder(folder / "pairs.jsonl", check_files=False)
    with pytest.raises(ValueError, match=r"sample 's3'.*does not exist"):
        lazy.image(3)


def test_unreadable_image_names_the_sample(image_folder):
    folder, images = image_folder
    (folder / "broken.png").write_bytes(b"not an image at all")
    rows = _rows(images)
    rows[1]["image"] = "broken.png"
    _write_jsonl(folder / "pairs.jsonl", rows)
    pairs = load_folder(folder / "pairs.jsonl")
    with pytest.raises(ValueError, match=r"sample 's1': cannot read image file .*broken\.png"):
        pairs[1]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda rows: rows[2].update(id="s0"), r"duplicate sample id 's0' at rows 0 and 2"),
        (lambda rows: rows[4].update(caption="  "), r"sample 's4' has an empty caption"),
        (lambda rows: rows[1].pop("caption"), r"line 2: missing column\(s\) \['caption'\]"),
        (lambda rows: rows[1].pop("label_score"), r"line 2: missing column\(s\) \['label_score'\]"),
    ],
)
def test_bad_rows(image_folder, edit, match):
    folder, images = image_folder
    rows = _rows(images)
    edit(rows)
    _write_jsonl(folder / "pairs.jsonl", rows)
    with pytest.raises(ValueError, match=match):
        load_folder(folder / "pairs.jsonl")


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_folder(tmp_path / "nope.jsonl")
    (tmp_path / "pairs.txt").write_text("x")
    with pytest.raises(ValueError, match=r"expected a \.jsonl or \.csv .* got suffix '\.txt'"):
        load_folder(tmp_path / "pairs.txt")
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"line 2: expected a JSON object; got list"):
        load_folder(tmp_path / "bad.jsonl")
    (tmp_path / "worse.jsonl").write_text("{oops\n")
    with pytest.raises(ValueError, match=r"line 1: not valid JSON"):
        load_folder(tmp_path / "worse.jsonl")


# ------------------------------------------------------------------------------------------ COCO
def _coco(images):
    names = list(images)
    return {
        "images": [{"id": 10 + i, "file_name": f"{n}.png"} for i, n in enumerate(names)]
        + [{"id": 99, "file_name": "uncaptioned.png"}],
        "annotations": [
            {"id": 500 + 2 * i + k, "image_id": 10 + i, "caption": f" {n} caption {k}\n"}
            for i, n in enumerate(names)
            for k in range(2)
        ],
    }


@pytest.mark.parametrize("mode", ["first", "all"])
def test_coco(image_folder, tmp_path, mode):
    folder, images = image_folder
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(_coco(images)))
    pairs = load_coco_captions(path, folder, captions=mode)
    if mode == "first":
        assert pairs.ids == ["10", "11", "12", "13", "14"]
        assert pairs.captions[1] == "coffee caption 0"
        np.testing.assert_array_equal(pairs.labels["caption_id"], [500, 502, 504, 506, 508])
    else:
        assert len(pairs) == 10
        assert pairs.ids[:3] == ["10-500", "10-501", "11-502"]
        assert pairs.captions[3] == "coffee caption 1"
        np.testing.assert_array_equal(pairs.labels["image_id"][:4], [10, 10, 11, 11])
    np.testing.assert_array_equal(np.asarray(pairs.image(0)), np.asarray(images["astronaut"]))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda c: c["annotations"][3].update(image_id=7), r"caption 503 refers to image 7"),
        (lambda c: c["annotations"][4].update(caption=" "), r"caption 504 of image 12 is empty"),
        (lambda c: c["annotations"][4].update(id=500), r"duplicate caption id 500"),
        (lambda c: c["images"][1].update(id=10), r"duplicate image id 10"),
        (lambda c: c["images"][2].update(file_name="gone.png"), r"sample '12'.*gone\.png"),
        (lambda c: c.pop("images"), r"expected a COCO-captions object"),
        (lambda c: c["annotations"][0].pop("caption"), r"annotation #0 needs"),
    ],
)
def test_coco_errors(image_folder, tmp_path, edit, match):
    folder, images = image_folder
    content = _coco(images)
    edit(content)
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
        load_coco_captions(path, folder)


def test_coco_bad_mode(tmp_path):
    with pytest.raises(ValueError, match="captions must be 'first' or 'all'; got 'some'"):
        load_coco_captions(tmp_path / "x.json", tmp_path, captions="some")


# -------------------------------------------------------------------------------------- datasets
def test_hf_dataset(image_folder):
    datasets = pytest.importorskip("datasets")
    folder, images = image_folder
    names = list(images)
    table = {
        "image": [images[n] for n in names],
        "caption": [[f"{n} one", f"{n} two"] for n in names],
        "key": [f"k{i}" for i in range(5)],
        "size": list(range(5)),
    }
    ds = datasets.Dataset.from_dict(table)
    pairs = from_hf_dataset(ds, id_column="key", label_columns=["size"])
    assert pairs.ids == ["k0", "k1", "k2", "k3", "k4"]
    assert pairs.captions[2] == "chelsea one"
    np.testing.assert_array_equal(np.asarray(pairs.image(2)), np.asarray(images["chelsea"]))
    every = from_hf_dataset(ds, captions="all", label_columns=["size"])
    assert every.ids[:3] == ["0-0", "0-1", "1-0"]
    np.testing.assert_array_equal(every.labels["size"], np.repeat(np.arange(5), 2))
    undecoded = ds.cast_column("image", datasets.Image(decode=False))
    np.testing.assert_array_equal(
        np.asarray(from_hf_dataset(undecoded).image(4)), np.asarray(images["blue"])
    )
    paths = datasets.Dataset.from_dict({"image": [str(folder / "red.png")], "caption": ["r"]})
    np.testing.assert_array_equal(np.asarray(from_hf_dataset(paths)[0].image), images["red"])


def test_hf_dataset_errors(image_folder):
    datasets = pytest.importorskip("datasets")
    folder, _ = image_folder
    ds = datasets.Dataset.from_dict(
        {"image": [str(folder / "gone.png"), None], "caption": ["x", "y"]}
    )
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\]"):
        from_hf_dataset(ds, caption_column="text")
    with pytest.raises(TypeError, match=r"must be a datasets\.Dataset"):
        from_hf_dataset(datasets.DatasetDict({"train": ds}))
    pairs = from_hf_dataset(ds)
    with pytest.raises(ValueError, match=r"sample '0'.*does not exist"):
        pairs.image(0)
    with pytest.raises(ValueError, match=r"sample '1' has no image"):
        pairs.image(1)
    empty = datasets.Dataset.from_dict({"image": [None], "caption": [[]]})
    with pytest.raises(ValueError, match=r"sample '0' has no caption"):
        from_hf_dataset(empty)
