"""What instruction tuning changed, layer by layer.

    python examples/base_vs_tuned.py acts.h5 --base base --tuned tuned

Two questions per layer: how similar are the base and tuned representations of the same inputs
(per modality), and did image-caption alignment go up or down with tuning (paired bootstrap CI
and two-sided p-value of the difference)? Saves both figures and the table as CSV.
"""

import argparse

from geomalign.analysis import (
    Calibration,
    ResultsTable,
    cross_checkpoint_curve,
    tuning_change_curve,
)
from geomalign.plotting import plot_curves, save_figure

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("store")
parser.add_argument("--base", default="base")
parser.add_argument("--tuned", default="tuned")
parser.add_argument("--measure", default="cka-linear")
parser.add_argument("--resamples", type=int, default=200)
args = parser.parse_args()

calibration = Calibration(n_resamples=args.resamples, random_state=0)
table = ResultsTable()
for modality in ("image", "text"):
    table.extend(
        cross_checkpoint_curve(
            args.store,
            modality,
            base=args.base,
            tuned=args.tuned,
            measures=[args.measure],
            calibration=calibration,
        )
    )
table.extend(
    tuning_change_curve(
        args.store,
        base=args.base,
        tuned=args.tuned,
        measures=[args.measure],
        calibration=calibration,
    )
)

for row in table.select(analysis="tuning-change"):
    flag = "*" if row.p_value < 0.05 else " "
    print(
        f"layer {row.layer:>3}: {row.notes.split(';')[0]} = {row.value:+.4f} "
        f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}] p = {row.p_value:.3g} {flag}"
    )
table.to_csv("base_vs_tuned.csv")
save_figure(
    plot_curves(table, analysis="cross-checkpoint", measure=args.measure), "base_vs_tuned.png"
)
save_figure(plot_curves(table, analysis="tuning-change", measure=args.measure), "tuning_change.png")
print("wrote base_vs_tuned.csv, base_vs_tuned.png, tuning_change.png")
