"""Max-T across the layers of a family: the joint draws behind it and the summary's default."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign import stats
from geomalign.analysis import (
    Calibration,
    families,
    layer_map,
    summarize,
    tuning_change_curve,
)
from geomalign.analysis.evaluation import paired_difference
from geomalign.metrics import get
from geomalign.store import ActivationStore

from .tables import change_rows


def _max_t(row) -> float:
    assert families.max_t_note(row.max_t_p_value, 4) in row.notes
    return row.max_t_p_value


def test_standardised_max_t_floor_and_single_statistic():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((99, 7)) * np.arange(1, 8)  # seven layers of different scales
    observed = np.array([0.0, 0.0, 100.0, 0.0, 0.0, 0.0, 0.0])
    p = stats.standardised_max_t(observed, draws, alternative="two-sided")
    assert p[2] == pytest.approx(1 / 100)  # 1 / (B + 1) whatever the number of layers
    assert (p >= 1 / 100).all()
    assert (p <= 1).all()
    # one statistic: max-T is its own test on the absolute standardised value
    one = stats.standardised_max_t([1.5], draws[:, :1], alternative="two-sided")
    z = (draws[:, 0] - draws[:, 0].mean()) / draws[:, 0].std()
    expected = (1 + np.sum(np.abs(z) >= abs(1.5 - draws[:, 0].mean()) / draws[:, 0].std())) / 100
    assert one[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="have none"):
        stats.standardised_max_t([1.0, 2.0], np.ones((5, 2)), alternative="greater")


def _store(path, n=60, n_layers=4, changed=2, seed=0):
    """Base and tuned views sharing their samples; tuning aligns the views at one layer only."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    with ActivationStore.create(path, [f"s{i}" for i in range(n)]) as store:
        for ckpt in ("base", "tuned"):
            store.add_checkpoint(ckpt, model="m")
            layers = {"image": [], "text": []}
            for layer in range(n_layers):
                shared = 3.0 if (ckpt == "tuned" and layer == changed) else 0.3
                for modality in layers:
                    noise = rng.standard_normal((n, 6))
                    layers[modality].append(np.hstack([shared * z, np.zeros((n, 3))]) + noise)
            for modality, data in layers.items():
                store.create_view(ckpt, modality, "mean", layers=list(range(n_layers)), dim=6)
                store.write(ckpt, modality, "mean", np.arange(n), np.stack(data))
    return path


def test_tuning_change_max_t_reads_the_shared_half_samples(tmp_path):
    path = _store(tmp_path / "s.h5")
    calibration = Calibration(n_resamples=49, random_state=3)
    rows = sorted(
        tuning_change_curve(path, base="base", tuned="tuned", measures="cka-linear",
                            calibration=calibration),
        key=lambda r: r.layer,
    )  # fmt: skip
    assert all("over 4 layers" in r.notes for r in rows)
    # the same half-samples at every layer: recomputed layer by layer, the joint draws give
    # the max-T p-values the curve noted
    cka = get("cka-linear")
    with ActivationStore(path) as store:
        views = {
            (c, m): [store.read(c, m, "mean", layer) for layer in range(4)]
            for c in ("base", "tuned")
            for m in ("image", "text")
        }
    drawn = []
    for layer in range(4):
        draws: list[np.ndarray] = []
        paired_difference(
            cka,
            (views["tuned", "image"][layer], views["tuned", "text"][layer]),
            (views["base", "image"][layer], views["base", "text"][layer]),
            calibration,
            draws=draws,
        )
        drawn.append(draws[0])
    expected = families.family_max_t(
        [r.value for r in rows], drawn, alternative="two-sided", standardise=False
    )
    np.testing.assert_allclose([_max_t(r) for r in rows], expected, rtol=1e-3)
    # the changed layer reaches max-T's floor 1/50; Holm over 4 layers cannot go below 4 * 2/50
    assert _max_t(rows[2]) == pytest.approx(1 / 50, rel=1e-3)
    assert stats.holm([r.p_value for r in rows])[2] >= 4 * 2 / 50 - 1e-12
    assert all(_max_t(r) >= 1 / 50 for r in rows)


def test_tuning_change_max_t_over_layers_a_window_left_unchanged(tmp_path):
    # a tuning that changed only blocks 2-3: layers 0-2 of both checkpoints are the same arrays,
    # so every resampled difference there is 0; max-T still applies to the curve, the unchanged
    # layers are never called changed and add nothing to the maximum over the layers
    rng = np.random.default_rng(1)
    n, z = 60, rng.standard_normal((60, 3))
    data = {(c, m): [] for c in ("base", "tuned") for m in ("image", "text")}
    for layer in range(5):
        for modality in ("image", "text"):
            base = np.hstack([0.3 * z, np.zeros((n, 3))]) + rng.standard_normal((n, 6))
            tuned = base if layer < 3 else base + np.hstack([2.0 * z, np.zeros((n, 3))])
            data["base", modality].append(base)
            data["tuned", modality].append(tuned)
    path = tmp_path / "window.h5"
    with ActivationStore.create(path, [f"s{i}" for i in range(n)]) as store:
        for ckpt in ("base", "tuned"):
            store.add_checkpoint(ckpt, model="m")
            for modality in ("image", "text"):
                store.create_view(ckpt, modality, "mean", layers=list(range(5)), dim=6)
                store.write(ckpt, modality, "mean", np.arange(n), np.stack(data[ckpt, modality]))
    calibration = Calibration(n_resamples=49, random_state=0)
    rows = sorted(
        tuning_change_curve(path, base="base", tuned="tuned", measures="cka-linear",
                            calibration=calibration),
        key=lambda r: r.layer,
    )  # fmt: skip
    assert [r.value for r in rows[:3]] == [0.0, 0.0, 0.0]
    assert all(r.max_t_p_value is not None for r in rows)
    assert [r.max_t_p_value for r in rows[:3]] == [1.0, 1.0, 1.0]
    assert families.adjusted(rows, "auto")[1] == "max-t"
    assert all(r.max_t_p_value == pytest.approx(1 / 50) for r in rows[3:])  # changed: the floor
    # standardised (a permutation null), a row without spread cannot be scaled: no max-T
    zeros, spread = np.zeros(49), rng.standard_normal(49)
    assert families.family_max_t([0.0, 1.0], [zeros, spread], alternative="two-sided") is None
    unscaled = families.family_max_t(
        [0.0, 1.0], [zeros, spread], alternative="two-sided", standardise=False
    )
    expected = stats.max_t_adjusted([1.0], np.abs(spread)[:, None], alternative="greater")
    assert unscaled is not None
    assert unscaled[0] == 1.0
    assert unscaled[1] == pytest.approx(expected[0])


def test_best_matches_note_their_max_t_over_the_map(tmp_path):
    path = _store(tmp_path / "s.h5")
    table = layer_map(
        path, ("tuned", "image", "mean"), ("tuned", "text", "mean"),
        calibration=Calibration(n_permutations=39, random_state=1),
    )  # fmt: skip
    best = sorted(table.select(analysis="best-match", statistic="value"), key=lambda r: r.layer)
    p = [_max_t(r) for r in best]
    assert all("over 4 layers" in r.notes for r in best)
    # max-T never calls more than the per-layer max-over-layers p-value does
    assert all(m >= r.p_value - 1e-12 for m, r in zip(p, best, strict=True))
    assert p[2] == pytest.approx(1 / 40)  # the aligned layer


def test_summary_uses_max_t_where_the_layers_were_drawn_jointly():
    floor = 2 / 51
    p = [0.5, 0.5, floor, 0.5, 0.5, 0.5, 0.5]
    max_t = [1.0, 1.0, 1 / 51, 1.0, 1.0, 0.9, 1.0]
    text = summarize(change_rows(p, draws=50, max_t=max_t))  # 50 resamples, as the demo draws
    assert "max-T-adjusted p <= 0.05 over 7 layers at layers 2" in text
    assert "use at least" not in text  # max-T's floor 1/51 is below 0.05 over any layers
    holm = summarize(change_rows(p, draws=50, max_t=max_t), correction="holm")
    assert "no layer with Holm-adjusted p <= 0.05 over 7 layers" in holm
    assert "use at least 279 for a single layer to reach it" in holm
    # without the joint draws, auto falls back to Holm; max-t asked for says why it cannot
    assert "Holm-adjusted p" in summarize(change_rows(p, draws=50))
    with pytest.raises(ValueError, match="no max-T p-value"):
        summarize(change_rows(p, draws=50), correction="max-t")
    few = summarize(change_rows(p, draws=10, max_t=[1.0] * 7))
    assert "smallest possible max-T-adjusted p is 0.091 > 0.05: use at least 19" in few
