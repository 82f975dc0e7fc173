"""``geomalign toy build|eval``: build the shapes-world testbed VLMs, or score checkpoints on it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

from geomalign.cli import COMMANDS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``toy`` subcommand and its ``build`` and ``eval`` actions."""
    parser = subparsers.add_parser(
        "toy",
        help=COMMANDS["toy"],
        description=__doc__.split("\n")[0],
    )
    actions = parser.add_subparsers(dest="action", required=True)
    build = actions.add_parser(
        "build", help="build (or reuse) the testbed checkpoints and print their held-out metrics"
    )
    _add_testbed_options(build)
    build.add_argument(
        "--overwrite", action="store_true", help="rebuild, replacing the cached build"
    )
    build.set_defaults(func=run_build)
    evaluate = actions.add_parser(
        "eval", help="score checkpoints on the testbed's held-out questions and captions"
    )
    _add_testbed_options(evaluate)
    evaluate.add_argument(
        "checkpoints",
        nargs="*",
        type=Path,
        metavar="CHECKPOINT",
        help="saved checkpoint folders (default: the testbed's llm, base and tuned)",
    )
    evaluate.add_argument("--json", type=Path, default=None, help="also write the scores here")
    evaluate.set_defaults(func=run_eval)


def _add_testbed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--small", action="store_true", help="the small preset (seconds) instead of the full build"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the testbed (default 0)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="testbed cache (default: $GEOMALIGN_CACHE/testbed, else "
        "$XDG_CACHE_HOME/geomalign/testbed or ~/.cache/geomalign/testbed)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")


def _testbed(args: argparse.Namespace, *, overwrite: bool = False):
    from geomalign.testbed import TestbedConfig, build_testbed  # imported when the command runs

    config = TestbedConfig.small(seed=args.seed) if args.small else TestbedConfig(seed=args.seed)
    return build_testbed(config, cache_dir=args.cache_dir, overwrite=overwrite, device=args.device)


def run_build(args: argparse.Namespace) -> int:
    """Build or reuse the testbed; print its checkpoint folders and metrics."""
    testbed = _testbed(args, overwrite=args.overwrite)
    print(f"testbed {testbed.root}")  # noqa: T201 - the command's output
    for name in ("llm", "base", "tuned"):
        print(f"  {name:<6} {getattr(testbed, name)}")  # noqa: T201
    print(_table(testbed.metrics), end="")  # noqa: T201
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Score checkpoints on the testbed's held-out sets; print (and optionally write) the scores."""
    from geomalign.testbed import evaluate_checkpoint

    testbed = _testbed(args)
    paths = args.checkpoints or [testbed.llm, testbed.base, testbed.tuned]
    data = testbed.data()
    scores = {str(path): evaluate_checkpoint(path, data, device=args.device) for path in paths}
    print(_table(scores), end="")  # noqa: T201 - the command's output
    if args.json is not None:
        args.json.write_text(json.dumps(scores, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")  # noqa: T201
    return 0


def _table(scores: Mapping[str, Mapping[str, float]]) -> str:
    """Metrics as rows, checkpoints as columns; blank where a checkpoint lacks a metric."""
    names = list(scores)
    metrics = list(dict.fromkeys(m for values in scores.values() for m in values))
    width = max(len(m) for m in metrics) if metrics else 6
    columns = [max(8, len(Path(n).name)) for n in names]
    header = (f"  {Path(n).name:>{w}}" for n, w in zip(names, columns, strict=True))
    lines = [" " * width + "".join(header)]
    for metric in metrics:
        cells = (
            f"  {scores[n][metric]:>{w}.3f}" if metric in scores[n] else "  " + " " * w
            for n, w in zip(names, columns, strict=True)
        )
        lines.append(f"{metric:<{width}}" + "".join(cells))
    return "\n".join(lines) + "\n"
