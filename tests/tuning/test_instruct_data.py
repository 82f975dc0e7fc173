"""Instruction files: reading, checking, image paths under a root, labels on responses only."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from geomalign.tuning import InstructionCollator, InstructionDataset, load_instructions
from geomalign.tuning.instruct_encoding import render
from geomalign.tuning.training import IGNORE_INDEX


def _write(folder, name, rows, *, jsonl=False):
    path = folder / name
    text = "\n".join(json.dumps(r) for r in rows) if jsonl else json.dumps(rows, indent=1)
    path.write_text(text)
    return path


@pytest.fixture
def image_folder(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (20, 20), "red").save(tmp_path / "images" / "a.png")
    Image.new("RGB", (20, 20), "blue").save(tmp_path / "outside.png")
    return tmp_path


def test_conversations_and_plain_rows_read_alike(image_folder):
    conversation = {
        "id": "x",
        "image": "a.png",
        "conversations": [
            {"from": "human", "value": "<image>\nwhat colour?"},
            {"from": "gpt", "value": "red"},
        ],
    }
    plain = {"image": "a.png", "prompt": "what colour?", "response": "red"}
    one = load_instructions(
        _write(image_folder, "c.json", [conversation]), image_root=image_folder / "images"
    )
    two = load_instructions(
        _write(image_folder, "p.jsonl", [plain], jsonl=True), image_root=image_folder / "images"
    )
    assert one[0].turns == two[0].turns
    assert one[0].image == two[0].image == (image_folder / "images" / "a.png").resolve()
    assert two[0].id.endswith("p.jsonl:1")  # no id: file and line


def test_labels_score_the_responses_and_their_end_only(instruct_rows, instruct_llava):
    _, processor = instruct_llava
    tokenizer = processor.tokenizer
    row = instruct_rows[1]  # two rounds
    item = InstructionDataset([row], processor)[0]
    ids, labels = item["input_ids"], item["labels"]
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert int((ids == image_id).sum()) == 16  # 4 x 4 patches, CLS dropped
    assert (labels[ids == image_id] == IGNORE_INDEX).all()
    scored = tokenizer.decode(ids[labels != IGNORE_INDEX])
    assert scored.replace(" ", "") == "green</s>blue</s>"
    assert torch.equal(labels[labels != IGNORE_INDEX], ids[labels != IGNORE_INDEX])
    assert item["pixel_values"].shape == (1, 3, 16, 16)


def test_chat_template_renders_locate_the_responses(instruct_rows, instruct_llava):
    _, processor = instruct_llava
    processor.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
        "</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    text, spans = render(instruct_rows[1], processor)
    assert [text[a:b] for a, b in spans] == ["green</s>", "blue</s>"]
    prompt, _ = render(instruct_rows[1], processor, until=3)
    assert prompt.endswith("after it?</s><|assistant|>")


def test_collator_pads_right_and_joins_images(instruct_rows, instruct_llava):
    _, processor = instruct_llava
    items = [InstructionDataset(instruct_rows, processor)[i] for i in (0, 1)]
    batch = InstructionCollator(pad_token_id=3)(items)
    short = len(items[0]["input_ids"])
    assert batch["input_ids"].shape == (2, len(items[1]["input_ids"]))
    assert (batch["input_ids"][0, short:] == 3).all()
    assert (batch["labels"][0, short:] == IGNORE_INDEX).all()
    assert batch["attention_mask"][0].sum() == short
    assert batch["pixel_values"].shape == (2, 3, 16, 16)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ("../outside.png", "leaves the image root"),
        ("/etc/passwd", "is absolute"),
        ("missing.png", "is not a file"),
        ("link.png", "leaves the image root"),
    ],
)
def test_images_cannot_escape_the_root(image_folder, image, match):
    (image_folder / "images" / "link.png").symlink_to(image_folder / "outside.png")
    rows = [
        {"id": "ok", "image": "a.png", "prompt": "q", "response": "a"},
        {"id": "bad", "image": image, "prompt": "q", "response": "a"},
    ]
    path = _write(image_folder, "rows.jsonl", rows, jsonl=True)
    with pytest.raises(ValueError, match=rf"rows\.jsonl:2 \(id bad\): .*{match}"):
        load_instructions(path, image_root=image_folder / "images")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"conversations": [{"from": "human", "value": "q"}]}, "no gpt turn"),
        (
            {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]},
            "must alternate",
        ),
        ({"conversations": [{"from": "bot", "value": "a"}]}, "expected 'human' or 'gpt'"),
        ({"prompt": "<image>\nq", "response": "a"}, "has no image"),
        ({"image": "a.png", "prompt": "<image><image>", "response": "a"}, "2 <image>"),
        ({"prompt": "q", "response": ""}, "is empty"),
        ({"question": "q"}, "needs 'conversations'"),
    ],
)
def test_bad_rows_are_named_by_file_line_and_id(image_folder, row, match):
    rows = [{"id": "fine", "prompt": "q", "response": "a"}, {"id": "r7", **row}]
    path = _write(image_folder, "train.json", rows)
    line = path.read_text().splitlines().index(" {", 2) + 1  # the second row's first line
    with pytest.raises(ValueError, match=rf"train\.json:{line} \(id r7\): .*{match}"):
        load_instructions(path, image_root=image_folder / "images")


def test_bad_files_are_refused(image_folder):
    path = image_folder / "broken.jsonl"
    path.write_text('{"id": "a", "prompt": "q", "response": "a"}\n{"id": \n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: not a JSON object"):
        load_instructions(path)
    rows = [{"id": "a", "prompt": "q", "response": "a"}] * 2
    with pytest.raises(ValueError, match=r"duplicate id, first seen at .*dup\.jsonl:1"):
        load_instructions(_write(image_folder, "dup.jsonl", rows, jsonl=True))
    with pytest.raises(FileNotFoundError):
        load_instructions(image_folder / "none.json")


def test_max_length_never_cuts_the_image(instruct_rows, instruct_llava):
    _, processor = instruct_llava
    with pytest.raises(ValueError, match=r"id c0\): max_length=10 would cut into the image"):
        InstructionDataset(instruct_rows, processor, max_length=10)[0]
    item = InstructionDataset(instruct_rows, processor, max_length=31)[1]
    assert len(item["input_ids"]) == 31
    assert (item["labels"] != IGNORE_INDEX).sum() == 2
