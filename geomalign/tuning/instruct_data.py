"""Instruction data: LLaVA conversation files and plain (image, prompt, response) rows.

Two row formats are read, from a JSON array or a JSONL file (one object a line), mixed freely:

- LLaVA's conversation format, ``{"id", "image", "conversations": [{"from": "human", "value":
  "<image>\\n..."}, {"from": "gpt", "value": ...}, ...]}``, any number of rounds; ``image`` may be
  absent (a text-only conversation);
- a plain row ``{"image", "prompt", "response"}`` (``id`` optional), one round.

Every row is checked when the file is read, before any training: turns alternate human / gpt and
start with a human turn, at least one gpt turn, at most one ``<image>`` placeholder and only when
the row has an image, and the image is a file under the image root. Image paths are relative to
that root and may not leave it (no absolute paths, no ``..`` beyond it, no symbolic link pointing
out of it). A bad row raises ``ValueError`` naming the file, its line and the row's id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IMAGE_PLACEHOLDER", "Conversation", "Turn", "load_instructions", "resolve_image"]

#: The text that marks where the image goes in a human turn (LLaVA's ``DEFAULT_IMAGE_TOKEN``).
IMAGE_PLACEHOLDER = "<image>"
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation: ``role`` is ``"user"`` or ``"assistant"``."""

    role: str
    text: str


@dataclass(frozen=True)
class Conversation:
    """One training example: turns, an optional image, and where it was read.

    Attributes
    ----------
    id : str
        The row's ``id`` (``"<file>:<line>"`` when it has none).
    turns : tuple of Turn
        Alternating user / assistant turns, starting with a user turn; assistant turns are the
        ones scored. The image placeholder is removed from the text: ``image`` says whether the
        conversation shows one, and it goes before the first user turn's text.
    image : pathlib.Path or None
        Absolute path of the image file, inside the image root.
    source : str
        ``"<file>:<line>"`` of the row, for error messages.
    """

    id: str
    turns: tuple[Turn, ...]
    image: Path | None
    source: str

    def where(self) -> str:
        """``"<file>:<line> (id <id>)"``: where this row is, for error messages."""
        return f"{self.source} (id {self.id})"


def resolve_image(path: object, root: str | os.PathLike[str]) -> Path:
    """Resolve an image path from a data file under ``root``, refusing any path that leaves it.

    Parameters
    ----------
    path : str
        Relative path of the image, as written in the data file.
    root : str or os.PathLike
        Folder the images are under.

    Returns
    -------
    pathlib.Path
        The absolute, resolved path of an existing file inside ``root``.

    Raises
    ------
    ValueError
        If ``path`` is not a non-empty string, is absolute, leaves ``root`` (through ``..`` or a
        symbolic link) or names no file.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"image must be a non-empty relative path; got {path!r}")
    if Path(path).is_absolute() or os.path.isabs(path):
        raise ValueError(f"image path {path!r} is absolute; give it relative to the image root")
    base = Path(root).resolve()
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"image path {path!r} leaves the image root {base}")
    if not resolved.is_file():
        raise ValueError(f"image {path!r} is not a file under the image root {base}")
    return resolved


def load_instructions(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> list[Conversation]:
    """Read and check an instruction file (LLaVA conversations and/or plain rows).

    Parameters
    ----------
    path : str or os.PathLike
        A JSON file holding an array of rows, or a JSONL file (one row per line; blank lines are
        skipped).
    image_root : str or os.PathLike, default=None
        Folder the image paths are relative to; None means the data file's folder.
    limit : int, default=None
        Read only the first ``limit`` rows.

    Returns
    -------
    list of Conversation
        In file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not JSON / JSONL, or a row is bad: the message names the file, the line
        and the row's id. Duplicate ids are refused too.

    Examples
    --------
    >>> rows = load_instructions("train.json", image_root="images/")  # doctest: +SKIP
    >>> rows[0].turns[1].role  # doctest: +SKIP
    'assistant'
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"instruction file {file} does not exist")
    root = file.parent if image_root is None else Path(image_root)
    if not root.is_dir():
        raise ValueError(f"image root {root} is not a folder")
    rows: list[Conversation] = []
    seen: dict[str, str] = {}
    for line, raw in _rows(file):
        if limit is not None and len(rows) >= limit:
            break
        source = f"{file}:{line}"
        row = _conversation(raw, source, root)
        if row.id in seen:
            raise ValueError(f"{row.where()}: duplicate id, first seen at {seen[row.id]}")
        seen[row.id] = source
        rows.append(row)
    if not rows:
        raise ValueError(f"{file}: no rows")
    return rows


def _rows(file: Path) -> Iterator[tuple[int, object]]:
    """Yield ``(line, object)`` for each row of a JSON array or a JSONL file."""
    text = file.read_text(encoding="utf-8")
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "[":
        yield from _array_rows(file, text, start + 1)
        return
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            yield line, json.loads(content)
        except json.JSONDecodeError as error:
            raise ValueError(f"{file}:{line}: not a JSON object ({error.msg})") from None


def _array_rows(file: Path, text: str, position: int) -> Iterator[tuple[int, object]]:
    """Decode the elements of a JSON array one by one, to know the line each starts on."""
    decoder = json.JSONDecoder()
    expect_value, n_values = True, 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        line = text.count("\n", 0, position) + 1
        if position >= len(text):
            raise ValueError(f"{file}:{line}: the JSON array is not closed")
        char = text[position]
        if char == "]":
            if expect_value and n_values:
                raise ValueError(f"{file}:{line}: a comma before the array's end")
            return
        if not expect_value:
            if char != ",":
                raise ValueError(f"{file}:{line}: expected ',' or ']' between rows")
            position, expect_value = position + 1, True
            continue
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise ValueError(f"{file}:{error.lineno}: not valid JSON ({error.msg})") from None
        expect_value, n_values = False, n_values + 1
        yield line, value


def _conversation(raw: object, source: str, root: Path) -> Conversation:
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: a row must be a JSON object; got {type(raw).__name__}")
    ident = raw.get("id", source)
    ident = str(ident) if isinstance(ident, str | int) and not isinstance(ident, bool) else None
    where = f"{source} (id {ident})"
    if ident is None:
        raise ValueError(f"{source}: id must be a string or an integer; got {raw.get('id')!r}")
    if "conversations" in raw:
        turns = _turns(raw["conversations"], where)
    elif "prompt" in raw or "response" in raw:
        turns = _plain_turns(raw, where)
    else:
        raise ValueError(
            f"{where}: a row needs 'conversations' (LLaVA format) or 'prompt' and 'response'; "
            f"it has {sorted(raw)}"
        )
    image = None
    if raw.get("image") is not None:
        try:
            image = resolve_image(raw["image"], root)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    n_placeholders = sum(turn.text.count(IMAGE_PLACEHOLDER) for turn in turns)
    if n_placeholders > 1:
        raise ValueError(f"{where}: {n_placeholders} {IMAGE_PLACEHOLDER} placeholders; one image")
    if n_placeholders and image is None:
        raise ValueError(f"{where}: the text has {IMAGE_PLACEHOLDER} but the row has no image")
    if n_placeholders and IMAGE_PLACEHOLDER not in turns[0].text:
        raise ValueError(f"{where}: {IMAGE_PLACEHOLDER} must be in the first human turn")
    cleaned = tuple(
        Turn(turn.role, turn.text.replace(IMAGE_PLACEHOLDER, "").strip()) for turn in turns
    )
    return Conversation(id=ident, turns=cleaned, image=image, source=source)


def _turns(value: object, where: str) -> tuple[Turn, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ValueError(f"{where}: 'conversations' must be a non-empty list of turns")
    turns = []
    for index, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise ValueError(f"{where}: turn {index} must be an object with a string 'value'")
        role = _ROLES.get(str(turn.get("from")))
        if role is None:
            raise ValueError(
                f"{where}: turn {index} is from {turn.get('from')!r}; expected 'human' or 'gpt'"
            )
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            raise ValueError(
                f"{where}: turn {index} is a {role} turn; turns must alternate human, gpt, ... "
                f"starting with human"
            )
        turns.append(Turn(role, turn["value"]))
    if len(turns) < 2:
        raise ValueError(f"{where}: no gpt turn, so nothing to learn")
    if turns[-1].role == "user":
        turns.pop()  # a trailing question without an answer teaches nothing
    return tuple(turns)


def _plain_turns(raw: dict, where: str) -> tuple[Turn, ...]:
    for key in ("prompt", "response"):
        if not isinstance(raw.get(key), str):
            raise ValueError(f"{where}: '{key}' must be a string; got {raw.get(key)!r}")
    if not raw["response"].strip():
        raise ValueError(f"{where}: 'response' is empty, so nothing to learn")
    return (Turn("user", raw["prompt"]), Turn("assistant", raw["response"]))
