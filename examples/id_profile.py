"""Intrinsic dimension per layer and the abstraction phase, compared between checkpoints.

    python examples/id_profile.py acts.h5 --modality image --measure id-gride

The phase is the most prominent interior peak of the ID profile; its onset and end are where the
profile crosses half the peak's prominence (see geomalign.analysis.detect_abstraction_phase).
"""

import argparse

from geomalign.analysis import (
    Calibration,
    ResultsTable,
    View,
    abstraction_phase,
    default_pooling,
    id_profile,
)
from geomalign.plotting import plot_id_profiles, save_figure
from geomalign.store import ActivationStore

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("store")
parser.add_argument("--modality", default="image")
parser.add_argument("--measure", default="id-gride")
parser.add_argument("--resamples", type=int, default=50)
parser.add_argument("--max-samples", type=int, default=2000)
args = parser.parse_args()

calibration = Calibration(n_resamples=args.resamples, max_samples=args.max_samples)
profiles = ResultsTable()
with ActivationStore(args.store) as store:
    for checkpoint in store.checkpoints():
        view = View(checkpoint, args.modality, default_pooling(store, checkpoint, args.modality))
        profiles.extend(id_profile(store, view, measure=args.measure, calibration=calibration))
phases = abstraction_phase(profiles)

for checkpoint in phases.unique("checkpoint"):
    stats = {r.statistic: r.value for r in phases.select(checkpoint=checkpoint)}
    print(f"{checkpoint}: " + ", ".join(f"{k} {v:.2f}" for k, v in stats.items()))
profiles.extend(phases)
view_label = profiles[0].view
save_figure(plot_id_profiles(profiles, measure=args.measure, view=view_label), "id_profile.png")
print("figure: id_profile.png")
