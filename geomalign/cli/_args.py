"""Option parsers shared by the subcommands: comma-separated names, layer lists, views."""

from __future__ import annotations

import argparse


def names(text: str) -> list[str]:
    """``a,b, c`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def layer_list(text: str) -> str | list[int]:
    """``all``, or comma-separated layer numbers and ``a-b`` ranges (inclusive)."""
    if text.strip() == "all":
        return "all"
    layers: list[int] = []
    try:
        for part in names(text):
            lo, sep, hi = part.partition("-") if not part.startswith("-") else (part, "", "")
            layers.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected 'all' or layer numbers like 0,4,8 or 0-8; got {text!r}"
        ) from exc
    return layers


def modality_view(text: str) -> tuple[str, str | None]:
    """``MODALITY[/POOLING]``, e.g. ``image`` or ``text/mean``; no pooling gives None."""
    modality, _, pooling = text.partition("/")
    if not modality or "/" in pooling:
        raise argparse.ArgumentTypeError(
            f"expected MODALITY or MODALITY/POOLING such as text/mean; got {text!r}"
        )
    return modality, pooling or None


def view(text: str) -> tuple[str, str]:
    """``MODALITY/POOLING``, e.g. ``text/mean``."""
    modality, sep, pooling = text.partition("/")
    if not sep or not modality or not pooling or "/" in pooling:
        raise argparse.ArgumentTypeError(
            f"expected MODALITY/POOLING such as text/mean; got {text!r}"
        )
    return modality, pooling


def jobs(text: str) -> int:
    """A number of worker processes: a positive int, or -1 for every core."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"expected a positive number or -1; got {text!r}")
    return value
