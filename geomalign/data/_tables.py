"""Reading untrusted JSONL and CSV tables: strict UTF-8, clean text, bounded lines.

Every record comes back with the line it starts on (a CSV record with a quoted multi-line field
spans several lines), and every string cell is checked: undecodable bytes, NUL characters and lone
surrogates (which JSON's ``\\ud800`` escapes produce) are refused naming the file, line and column,
since HDF5 and tokenizers cannot hold them faithfully.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

#: Longest line (and longest CSV field) read, in bytes: a file without line breaks cannot make the
#: loader hold more than this at once.
MAX_LINE_BYTES = 1 << 24

Record = tuple[int, dict[str, object]]


def check_text(value: str, where: str) -> str:
    """Return ``value`` unless it holds a NUL or a lone surrogate (ValueError at ``where``)."""
    if "\x00" in value:
        raise ValueError(f"{where}: contains a NUL character at position {value.index(chr(0))}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{where}: contains a lone surrogate ({value[exc.start]!r} at position {exc.start}); "
            "text must be valid Unicode."
        ) from exc
    return value


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` with line endings kept, refusing bad UTF-8 and huge lines."""
    with path.open("rb") as handle:
        number = 0
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise ValueError(
                    f"{path}, line {number}: longer than {MAX_LINE_BYTES >> 20} MiB; "
                    "not a pairs table?"
                )
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{path}, line {number}: not valid UTF-8 (byte {raw[exc.start]:#04x} at "
                    f"byte {exc.start + 1} of the line); save the table as UTF-8."
                ) from exc


def _check_cells(row: dict[str, object], where: str) -> None:
    for column, value in row.items():
        if isinstance(value, str):
            check_text(value, f"{where}, column {column!r}")
        check_text(str(column), f"{where}, a column name")


def read_jsonl(path: Path) -> tuple[list[Record], list[str]]:
    """Records of a JSONL file (one JSON object per non-blank line) and all their keys, in order."""
    rows: list[Record] = []
    for line, text in _lines(path):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {line}: not valid JSON ({exc}).") from exc
        if not isinstance(row, dict):
            raise ValueError(
                f"{path}, line {line}: expected a JSON object; got {type(row).__name__}."
            )
        _check_cells(row, f"{path}, line {line}")
        rows.append((line, row))
    return rows, list(dict.fromkeys(key for _, row in rows for key in row))


def read_csv(path: Path) -> tuple[list[Record], list[str]]:
    """Records of a CSV file under its header row, each with the line it starts on.

    A record shorter than the header gets None in its missing trailing columns (reported by the
    caller as missing); a longer one is an error. Blank lines are skipped.
    """
    lines = _lines(path)
    reader = csv.reader(text for _, text in lines)
    previous_limit = csv.field_size_limit(MAX_LINE_BYTES)
    try:
        header: list[str] | None = None
        rows: list[Record] = []
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise ValueError(f"{path}, line {start}: malformed CSV ({exc}).") from exc
            if not fields:
                continue
            if header is None:
                header = fields
                _check_cells(dict.fromkeys(header, ""), f"{path}, line {start}")
                if len(set(header)) != len(header):
                    raise ValueError(f"{path}, line {start}: repeated column names in {header}.")
                continue
            if len(fields) > len(header):
                raise ValueError(
                    f"{path}, line {start}: {len(fields)} fields but the header has "
                    f"{len(header)} ({header})."
                )
            row: dict[str, object] = dict.fromkeys(header)
            row.update(zip(header, fields, strict=False))
            _check_cells(row, f"{path}, line {start}")
            rows.append((start, row))
    finally:
        csv.field_size_limit(previous_limit)
    return rows, header or []
