"""Freeze a vision-language model except the window of layers its ID profile points to.

    python examples/selective_finetune.py results.csv MODEL --checkpoint base --width 11

``results.csv`` is the table of ``geomalign analyze`` (it holds the ``id-profile`` rows of each
checkpoint and view); MODEL is the folder or hub id of the model to fine-tune (e.g. a LLaVA
stage-1 checkpoint). The script chooses ``--width`` layers around the abstraction-phase peak,
freezes everything else (or adds LoRA adapters to the window only, with ``--lora-rank``) and
prints what trains, part by part. Hand the model to your own training loop afterwards; on the
built-in testbed, ``geomalign finetune`` runs the whole comparison with full fine-tuning.
"""

import argparse

from transformers import AutoModelForImageTextToText

from geomalign.analysis import ResultsTable
from geomalign.tuning import (
    curve_from_table,
    lora_window,
    select_window,
    set_trainable,
    trainable_parameters,
)

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("results")
parser.add_argument("model")
parser.add_argument("--checkpoint", default=None, help="profile of this checkpoint")
parser.add_argument("--view", default=None, help="profile of this view, e.g. image/mean")
parser.add_argument("--measure", default=None, help="profile of this measure, e.g. id-gride")
parser.add_argument("--width", type=int, default=11, help="layers in the window")
parser.add_argument("--projector", action="store_true", help="also train the projector")
parser.add_argument("--lora-rank", type=int, default=None, help="LoRA on the window instead")
args = parser.parse_args()

layers, values = curve_from_table(
    ResultsTable.from_csv(args.results),
    checkpoint=args.checkpoint,
    view=args.view,
    measure=args.measure,
)
window = select_window(values, layers=layers, rule="peak", width=args.width)
print(
    f"ID peak at layer {window.numbers['peak_layer']:.0f} "
    f"(ID {window.numbers['peak_value']:.1f}, prominence {window.numbers['prominence']:.1f}): "
    f"training layers {window.first}-{window.last}, i.e. decoder blocks "
    f"{window.blocks.start}..{window.blocks.stop - 1}"
)

model = AutoModelForImageTextToText.from_pretrained(args.model)
if args.lora_rank is None:
    report = set_trainable(model, blocks=window.blocks, projector=args.projector)
else:
    model = lora_window(model, window.blocks, rank=args.lora_rank, projector=args.projector)
    report = trainable_parameters(model)
print(
    f"trainable: {report.n_trainable:,} of {report.n_total:,} parameters "
    f"({100 * report.fraction:.2f} %)"
)
for part, (trainable, total) in report.by_part.items():
    print(f"  {part:<11} {trainable:>14,} of {total:>14,}")
