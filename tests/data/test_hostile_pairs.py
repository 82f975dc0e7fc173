"""Hostile or broken pairs files: refused with one line naming file and line, never trusted."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from geomalign.cli import main
from geomalign.data import load_coco_captions, load_folder, load_pairs


@pytest.fixture
def dataset(tmp_path):
    """A dataset root with two images, and a secret file beside it (outside the root)."""
    root = tmp_path / "root"
    root.mkdir()
    for name, colour in [("a.png", "red"), ("b.png", "blue")]:
        Image.new("RGB", (8, 8), colour).save(root / name)
    (tmp_path / "secret.png").write_bytes((root / "a.png").read_bytes())
    return root


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(second_image="b.png", second_caption="a blue square"):
    return [
        {"id": "s0", "image": "a.png", "caption": "a red square"},
        {"id": "s1", "image": second_image, "caption": second_caption},
    ]


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ("../secret.png", r"line 2: image path '\.\./secret\.png' leads outside the dataset root"),
        ("sub/../../secret.png", r"line 2: .* leads outside the dataset root"),
        ("/etc/passwd", r"line 2: image path '/etc/passwd' is absolute"),
        ("../../../../../../etc/passwd", r"line 2: .* leads outside"),
    ],
)
def test_paths_outside_the_root_are_refused(dataset, image, match):
    table = _jsonl(dataset / "pairs.jsonl", _rows(second_image=image))
    with pytest.raises(ValueError, match=match):
        load_folder(table)
    with pytest.raises(ValueError, match="allow_outside_root=True"):
        load_folder(table, check_files=False)


def test_symlink_escaping_the_root_is_refused(dataset):
    os.symlink(dataset.parent / "secret.png", dataset / "link.png")
    os.symlink(dataset / "a.png", dataset / "inside.png")
    table = _jsonl(dataset / "pairs.jsonl", _rows(second_image="link.png"))
    with pytest.raises(ValueError, match=r"pairs\.jsonl, line 2: image path 'link\.png' leads"):
        load_folder(table)
    fine = load_folder(_jsonl(dataset / "ok.jsonl", _rows(second_image="inside.png")))
    assert np.asarray(fine.image(1)).tolist() == np.asarray(fine.image(0)).tolist()
    trusted = load_folder(table, allow_outside_root=True)
    assert trusted.image(1).size == (8, 8)


def test_outside_root_is_accepted_when_asked(dataset):
    rows = _rows(second_image=str(dataset.parent / "secret.png"))
    pairs = load_folder(_jsonl(dataset / "pairs.jsonl", rows), allow_outside_root=True)
    assert pairs.image(1).size == (8, 8)


def test_coco_paths_are_contained(dataset, tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "../secret.png"}],
        "annotations": [
            {"id": 10, "image_id": 1, "caption": "red"},
            {"id": 11, "image_id": 2, "caption": "secret"},
        ],
    }
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=r"captions\.json: image 2: image path .* leads outside"):
        load_coco_captions(path, dataset)
    assert len(load_coco_captions(path, dataset, allow_outside_root=True)) == 2


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"id": "s1", "image": "b.png", "caption": "a nul \\u0000 here"}', r"line 3, column "),
        ('{"id": "s1", "image": "b.png", "caption": "half \\ud800 a pair"}', r"lone surrogate"),
        ('{"id": "s\\u0000", "image": "b.png", "caption": "ok"}', r"line 3, column 'id'"),
    ],
)
def test_bad_text_in_jsonl_names_the_line(dataset, text, match):
    good = json.dumps(_rows()[0])
    (dataset / "pairs.jsonl").write_text(f"{good}\n\n{text}\n")
    with pytest.raises(ValueError, match=match) as caught:
        load_folder(dataset / "pairs.jsonl")
    assert "pairs.jsonl, line 3" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("pairs.jsonl", b'{"id": "s0", "image": "a.png", "caption": "caf\xe9"}\n', 1),
        ("pairs.csv", b"id,image,caption\ns0,a.png,red\ns1,b.png,caf\xe9\n", 3),
    ],
)
def test_undecodable_bytes_name_the_line(dataset, name, content, line):
    (dataset / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"{name}, line {line}: not valid UTF-8 \(byte 0xe9"):
        load_folder(dataset / name)


def test_csv_nul_and_multiline_records(dataset):
    path = dataset / "pairs.csv"
    path.write_text(
        "id,image,caption\n"
        's0,a.png,"a caption\nover three\nlines"\n'
        's1,b.png,"one with a NUL \x00 in it"\n'
    )
    with pytest.raises(ValueError, match=r"pairs\.csv, line 5, column 'caption': contains a NUL"):
        load_folder(path)
    path.write_text(
        "id,image,caption,label_k\n"
        's0,a.png,"a caption\nover two lines",1\n'
        "\n"
        's1,b.png,"also\n\nmulti",2\n'
        "s2,b.png\n"
    )
    with pytest.raises(ValueError, match=r"pairs\.csv, line 8: missing column\(s\) \['caption'"):
        load_folder(path)
    path.write_text('id,image,caption\ns0,a.png,"fine"\ns1,b.png,"two\nlines",extra\n')
    with pytest.raises(ValueError, match=r"line 3: 4 fields but the header has 3"):
        load_folder(path)
    path.write_text('id,image,caption\ns0,a.png,"unterminated\n')
    pairs_or_error = None
    try:
        pairs_or_error = load_folder(path)
    except ValueError as exc:
        pairs_or_error = exc
    # an unterminated quote runs to the end of the file: either csv reports it, or the caption
    # holds the rest of the file; never an unhandled csv.Error
    assert isinstance(pairs_or_error, ValueError) or pairs_or_error.captions == ["unterminated\n"]


def test_long_csv_field_is_read(dataset):
    caption = "word " * 40_000  # 200,000 characters, beyond csv's default field limit
    path = dataset / "pairs.csv"
    path.write_text(f'id,image,caption\ns0,a.png,"{caption}"\n')
    assert len(load_folder(path).captions[0]) == len(caption)


def test_labels_only_by_prefix_or_request(dataset, caplog):
    rows = _rows()
    for i, row in enumerate(rows):
        row.update(label_colour=["red", "blue"][i], url=f"http://x/{i}", split="val")
    table = _jsonl(dataset / "pairs.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        pairs = load_folder(table)
    assert list(pairs.labels) == ["colour"]
    assert "ignoring column(s) ['split', 'url']" in caplog.text
    asked = load_folder(table, label_columns=["split"])
    assert list(asked.labels) == ["split"]
    with pytest.raises(ValueError, match=r"no label column\(s\) \['size'\]"):
        load_folder(table, label_columns=["size"])


def test_captions_only_table(tmp_path):
    table = _jsonl(
        tmp_path / "captions.jsonl", [{"id": "c0", "caption": "x"}, {"id": "c1", "caption": "y"}]
    )
    pairs = load_pairs(table)
    assert not pairs.has_images
    assert pairs[1].image is None
    with pytest.raises(ValueError, match=r"captions-only dataset has no images"):
        pairs.image(0)
    assert pairs.subset([1]).captions == ["y"]


def test_missing_images_hint_at_image_dir(dataset, tmp_path):
    table = _jsonl(tmp_path / "pairs.jsonl", _rows())  # the images are in root/, not beside it
    with pytest.raises(ValueError, match=r"resolved against .*table's folder.*--image-dir"):
        load_folder(table)
    assert len(load_folder(table, dataset)) == 2


def test_cli_reports_hostile_pairs_in_one_line(dataset, tmp_path, capsys):
    table = _jsonl(dataset / "pairs.jsonl", _rows(second_image="../secret.png"))
    argv = ["extract", "--model", "unused", "--data", str(table), "--out", str(tmp_path / "a.h5")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "pairs.jsonl, line 2: image path '../secret.png' leads outside" in err
    assert not (tmp_path / "a.h5").exists()
