"""``geomalign import SOURCE --out STORE --checkpoint NAME --view MODALITY/POOLING``.

Activations made elsewhere (NumPy .npy/.npz, safetensors files or folders, torch.save files such
as platonic-rep's, Hugging Face datasets / Arrow shards) become one view of a store, with their
provenance (files, SHA-256, format, dtype). Sample ids come from --data (a pairs file, whose
captions are stored too), --ids (one id per line), the source, or an existing store.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geomalign.cli import COMMANDS
from geomalign.cli._args import layer_list, names, view
from geomalign.data import load_pairs
from geomalign.interchange import FORMATS, import_activations


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``import`` subcommand."""
    parser = subparsers.add_parser(
        "import", help=COMMANDS["import"], description=__doc__.split("\n")[0]
    )
    parser.add_argument("source", type=Path, help="the file or folder of activations")
    parser.add_argument(
        "--out", type=Path, required=True, help="the store (.h5), created or added to"
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint name in the store")
    parser.add_argument(
        "--view", type=view, required=True, metavar="MODALITY/POOLING", help="e.g. text/mean"
    )
    parser.add_argument("--format", choices=FORMATS, default=None, help="default: by suffix")
    parser.add_argument(
        "--layout",
        choices=("layers-first", "samples-first"),
        default=None,
        help="axis order of a 3-D array (default: samples-first for torch files, else "
        "layers-first)",
    )
    parser.add_argument(
        "--layers",
        type=layer_list,
        default=None,
        help="layer numbers of the array's layers, e.g. 0-32 (default 0, 1, ...)",
    )
    parser.add_argument("--key", default="feats", help="entry of a torch file's dict")
    parser.add_argument("--columns", type=names, default=None, help="Arrow: the layer columns")
    samples = parser.add_mutually_exclusive_group()
    samples.add_argument("--data", type=Path, default=None, help="pairs file giving ids, captions")
    samples.add_argument("--ids", type=Path, default=None, help="text file, one sample id a line")
    parser.add_argument("--image-dir", type=Path, default=None, help="COCO --data: image folder")
    parser.add_argument("--model", default=None, help="model recorded as provenance")
    parser.add_argument("--store-dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import the source, print the view written."""
    ids = captions = None
    if args.data is not None:
        pairs = load_pairs(args.data, args.image_dir, check_files=False)
        ids, captions = pairs.ids, pairs.captions
    elif args.ids is not None:
        ids = [line for line in args.ids.read_text(encoding="utf-8").splitlines() if line]
    if args.layers == "all":
        raise ValueError("--layers takes layer numbers here (e.g. 0-32), not 'all'.")
    modality, pooling = args.view
    info = import_activations(
        args.source,
        args.out,
        checkpoint=args.checkpoint,
        modality=modality,
        pooling=pooling,
        format=args.format,
        layout=args.layout,
        layers=args.layers,
        key=args.key,
        columns=args.columns,
        sample_ids=ids,
        captions=captions,
        model=args.model,
        store_dtype=args.store_dtype,
        overwrite=args.overwrite,
    )
    print(  # noqa: T201 - the command's output
        f"{args.source} -> {args.out}: {args.checkpoint}/{modality}/{pooling}, "
        f"{len(info.layers)} layers x {info.n_samples} samples x {info.dim}"
    )
    return 0
