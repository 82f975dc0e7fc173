"""``geomalign extract --model ID --data PAIRS --out STORE``: hidden states into a store.

With ``--base`` a second checkpoint (e.g. the stage-1 base of a tuned VLM) is extracted into the
same store, under ``--base-name``. An existing store is resumed: only missing rows are computed.
With ``--shard RANK/WORLD`` only the rank's share of the samples is extracted (one store per rank,
joined afterwards by ``geomalign merge``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geomalign.cli import COMMANDS
from geomalign.cli._args import layer_list, names
from geomalign.data import load_pairs
from geomalign.extract import POOLINGS, extract


def _shard(text: str) -> tuple[int, int]:
    """``RANK/WORLD``, e.g. ``0/4``."""
    rank, _, world = text.partition("/")
    try:
        return int(rank), int(world)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected RANK/WORLD_SIZE such as 0/4; got {text!r}"
        ) from exc


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``extract`` subcommand."""
    parser = subparsers.add_parser(
        "extract",
        help=COMMANDS["extract"],
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--model", required=True, help="hub id or local folder of the model")
    parser.add_argument(
        "--base", default=None, help="hub id or folder of a second checkpoint for the same store"
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="pairs: a .jsonl/.csv table (id, image, caption, label_*; no image column: "
        "captions only) or a COCO-captions .json file (docs/data.md)",
    )
    parser.add_argument(
        "--image-dir",
        type=Path,
        default=None,
        help="dataset root that image paths are relative to (default: the table's folder; "
        "required for COCO)",
    )
    parser.add_argument(
        "--labels",
        type=names,
        default=None,
        help="comma-separated table columns kept as labels (default: the label_* columns)",
    )
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept absolute image paths and paths leading outside the dataset root",
    )
    parser.add_argument(
        "--captions",
        choices=("first", "all"),
        default="first",
        help="COCO: first caption per image, or one sample per caption",
    )
    parser.add_argument("--out", type=Path, required=True, help="the activation store (.h5)")
    parser.add_argument(
        "--name",
        default=None,
        help="checkpoint name of --model (default: 'tuned' with --base, else 'model')",
    )
    parser.add_argument("--base-name", default="base", help="checkpoint name of --base")
    parser.add_argument(
        "--pooling",
        type=names,
        default=["mean", "last"],
        help=f"comma-separated, among {','.join(POOLINGS)} (default mean,last)",
    )
    parser.add_argument(
        "--layers",
        type=layer_list,
        default="all",
        help="'all' (default) or e.g. 0,8,16 or 0-8 (0 = embedding output)",
    )
    parser.add_argument(
        "--modalities",
        type=names,
        default=None,
        help="image,text for a VLM (default: all the model has); joint adds image + caption "
        "in one prompt (views joint-image, joint-text, joint)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="samples per forward pass")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float16", "bfloat16"),
        help="dtype of the model weights (default float32)",
    )
    parser.add_argument(
        "--store-dtype",
        default="float32",
        choices=("float32", "float16", "bfloat16"),
        help="dtype on disk (default float32; bfloat16 kept exactly, read as float32)",
    )
    parser.add_argument("--device", default=None, help="e.g. cuda:0 (default: CUDA if present)")
    parser.add_argument("--revision", default=None, help="hub revision of --model")
    parser.add_argument("--base-revision", default=None, help="hub revision of --base")
    parser.add_argument(
        "--image-template",
        default=None,
        help="image prompt with {image} (default LLaVA-1.5: 'USER: {image}\\nASSISTANT:')",
    )
    parser.add_argument(
        "--text-template",
        default=None,
        help="caption prompt with {caption} (default LLaVA-1.5 for a VLM, "
        "the bare caption for a text model)",
    )
    parser.add_argument(
        "--long-captions",
        choices=("truncate", "error"),
        default="truncate",
        help="a caption beyond the model's context: truncate it with a warning (default) or "
        "stop with an error",
    )
    parser.add_argument(
        "--joint-template",
        default=None,
        help="joint prompt with {image} then {caption} "
        "(default LLaVA-1.5: 'USER: {image}\\n{caption}\\nASSISTANT:')",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of 'random' pooling")
    parser.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="RANK/WORLD",
        help="extract only this rank's contiguous share of the samples, e.g. 0/4 "
        "(under torchrun: --shard $RANK/$WORLD_SIZE); join the stores with 'geomalign merge'",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing store instead of resuming it"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the pairs, extract --model (and --base) into --out, print what was written."""
    pairs = load_pairs(
        args.data,
        args.image_dir,
        captions=args.captions,
        label_columns=args.labels,
        allow_outside_root=args.allow_outside_root,
    )
    templates = {
        key: value
        for key, value in (
            ("image", args.image_template),
            ("text", args.text_template),
            ("joint", args.joint_template),
        )
        if value is not None
    }
    runs = [(args.model, args.name or ("tuned" if args.base else "model"), args.revision)]
    if args.base is not None:
        runs.append((args.base, args.base_name, args.base_revision))
    for i, (model, name, revision) in enumerate(runs):
        result = extract(
            model,
            pairs,
            args.out,
            checkpoint_name=name,
            poolings=args.pooling,
            modalities=args.modalities,
            layers=args.layers,
            batch_size=args.batch_size,
            store_dtype=args.store_dtype,
            random_state=args.seed,
            overwrite=args.overwrite and i == 0,
            revision=revision,
            dtype=args.dtype,
            device=args.device,
            templates=templates or None,
            shard=args.shard,
            long_captions=args.long_captions,
            progress=not args.no_progress,
        )
        views = ", ".join(f"{m}/{p}" for m, p in result.views)
        shard = "" if args.shard is None else f"; shard {args.shard[0]}/{args.shard[1]}"
        print(  # noqa: T201 - the command's output
            f"{name}: {model} -> {result.store_path} ({views}; {len(result.layers)} layers; "
            f"{result.n_encoded} samples run{shard})"
        )
    return 0
