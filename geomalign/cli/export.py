"""``geomalign export STORE --checkpoint NAME --view MODALITY/POOLING --out PATH``.

One pooled view's layers as safetensors (a folder of layer_<n>.safetensors and samples.json),
a .npy stack (n_layers, n_samples, dim) or an .npz archive (layer_<n>, ids, captions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geomalign.cli import COMMANDS
from geomalign.cli._args import layer_list, view
from geomalign.interchange import EXPORT_FORMATS, export_view


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export", help=COMMANDS["export"], description=__doc__.split("\n")[0]
    )
    parser.add_argument("store", type=Path, help="an activation store (.h5)")
    parser.add_argument("--checkpoint", required=True, help="checkpoint in the store")
    parser.add_argument(
        "--view", type=view, required=True, metavar="MODALITY/POOLING", help="e.g. text/mean"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder (safetensors) or file")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="safetensors")
    parser.add_argument(
        "--layers", type=layer_list, default="all", help="e.g. 0,8,16 (default all)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export the view, print the files written."""
    modality, pooling = args.view
    files = export_view(
        args.store,
        args.checkpoint,
        modality,
        pooling,
        args.out,
        format=args.format,
        layers=None if args.layers == "all" else args.layers,
        overwrite=args.overwrite,
    )
    print(f"{args.checkpoint}/{modality}/{pooling} -> {len(files)} files in {args.out}")  # noqa: T201
    return 0
