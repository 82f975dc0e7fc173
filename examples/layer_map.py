"""Which caption layer does each image layer look like? A layer x layer map with best matches.

    python examples/layer_map.py acts.h5 --checkpoint tuned --permutations 200

The best-matching caption layer of each image layer is a maximum over all caption layers, so its
p-value comes from a permutation null of that maximum (the whole map recomputed per permutation),
not from a per-cell test, which would overstate significance.
"""

import argparse

from geomalign.analysis import Calibration, View, default_pooling, layer_map
from geomalign.plotting import plot_layer_map, save_figure

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("store")
parser.add_argument("--checkpoint", default="tuned")
parser.add_argument("--measure", default="cka-linear")
parser.add_argument("--permutations", type=int, default=200)
parser.add_argument("--max-samples", type=int, default=1000)
args = parser.parse_args()

image = View(args.checkpoint, "image", default_pooling(args.store, args.checkpoint, "image"))
text = View(args.checkpoint, "text", default_pooling(args.store, args.checkpoint, "text"))
calibration = Calibration(n_permutations=args.permutations, max_samples=args.max_samples)
table = layer_map(args.store, image, text, measure=args.measure, calibration=calibration)

for row in table.select(analysis="best-match"):
    print(
        f"image layer {row.layer:>3} -> caption layer {row.layer_b:>3}: {row.value:.4f} "
        f"(null of the max {row.null_mean:.4f}, p = {row.p_value:.3g})"
    )
fig = plot_layer_map(
    table,
    measure=args.measure,
    checkpoint=args.checkpoint,
    view=image.label,
    checkpoint_b=args.checkpoint,
    view_b=text.label,
)
save_figure(fig, "layer_map.png")
print("figure: layer_map.png")
