"""``geomalign info FILE``: what an activation store holds."""

from __future__ import annotations

import argparse

from geomalign.cli import COMMANDS
from geomalign.store import ActivationStore


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``info`` subcommand."""
    parser = subparsers.add_parser(
        "info", help=COMMANDS["info"], description=__doc__.split("\n")[0]
    )
    parser.add_argument("file", help="an activation store (.h5)")
    parser.set_defaults(func=run)


def describe(store: ActivationStore) -> str:
    """Return a human-readable description of ``store``."""
    attrs = store.attrs
    lines = [
        f"{store.path}",
        f"  schema version {store.schema_version}, written by geomalign "
        f"{attrs['geomalign_version']} on {attrs['created']}",
        f"  samples: {store.n_samples}"
        + (", with captions" if store.captions is not None else "")
        + (f", labels: {', '.join(store.labels)}" if store.labels else ""),
    ]
    checkpoints = store.checkpoints()
    for name, provenance in checkpoints.items():
        details = ", ".join(f"{k}={v}" for k, v in provenance.items())
        lines.append(f"  checkpoint {name}: {details}")
        for ckpt, modality, pooling in store.views():
            if ckpt != name:
                continue
            info = store.view_info(ckpt, modality, pooling)
            layers = info.layers
            span = (
                f"{layers[0]}..{layers[-1]}"
                if layers == list(range(layers[0], layers[-1] + 1))
                else ",".join(map(str, layers))
            )
            rows = f"{info.n_rows} token rows" if info.tokens else f"{info.n_rows} rows"
            status = "complete" if info.complete else f"{info.n_done}/{info.n_samples} samples done"
            lines.append(
                f"    {modality}/{pooling}: layers {span} ({len(layers)}), {rows} x {info.dim}, "
                f"{info.dtype}, {status}"
            )
    if not checkpoints:
        lines.append("  no checkpoints yet")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the description of ``args.file``."""
    with ActivationStore(args.file) as store:
        print(describe(store))  # noqa: T201 - the command's output
    return 0
