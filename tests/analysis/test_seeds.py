"""Several checkpoints per role: per-seed curves, between-seed spread, conclusions across seeds."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from geomalign import stats
from geomalign.analysis import (
    Calibration,
    LayerCurve,
    Result,
    ResultsTable,
    analyze_store,
    roles_of,
    seed_conclusions,
    seed_spread,
    summarize,
)
from geomalign.analysis.seeds import seed_dependence
from geomalign.store import ActivationStore

from .planted import DIM, LAYERS, N_SAMPLES, planted_layers

SEEDS = (0, 1, 2)
ROLES = {"base": [f"base-s{s}" for s in SEEDS], "tuned": [f"tuned-s{s}" for s in SEEDS]}


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory):
    """Planted base/tuned stores of three seeds in one store: base-s<k>, tuned-s<k>."""
    path = tmp_path_factory.mktemp("seeds") / "seeds.h5"
    ids = [f"s{i:04d}" for i in range(N_SAMPLES)]
    with ActivationStore.create(path, ids) as store:
        for seed in SEEDS:
            for (role, modality), data in planted_layers(seed).items():
                ckpt = f"{role}-s{seed}"
                if ckpt not in store.checkpoints():
                    store.add_checkpoint(
                        ckpt, model=f"planted/{ckpt}", n_layers=len(LAYERS) - 1, hidden_size=DIM
                    )
                store.create_view(ckpt, modality, "mean", layers=LAYERS, dim=DIM, dtype="float32")
                store.write(ckpt, modality, "mean", np.arange(N_SAMPLES), data)
    return path


@pytest.fixture(scope="module")
def seeded_table(seeded_store):
    calibration = Calibration(n_permutations=19, n_resamples=19, random_state=0)
    return analyze_store(
        seeded_store, measures=["cka-linear"], map_measures=[], roles=ROLES, calibration=calibration
    )


def test_role_rows_hold_the_mean_and_range_of_the_seed_rows(seeded_table):
    role_rows = [r for r in seeded_table if r.n_seeds is not None]
    assert {(r.analysis, r.checkpoint, r.checkpoint_b) for r in role_rows} == {
        ("cross-modal", "base", "base"),
        ("cross-modal", "tuned", "tuned"),
        ("cross-checkpoint", "base", "tuned"),
        ("tuning-change", "tuned", "base"),
    }
    for r in role_rows:
        seeds = [
            s
            for s in seeded_table
            if s.n_seeds is None
            and (s.analysis, s.measure, s.view, s.view_b, s.layer) == (
                r.analysis, r.measure, r.view, r.view_b, r.layer
            )
            and s.checkpoint.startswith(f"{r.checkpoint}-")
        ]  # fmt: skip
        values = [s.value for s in seeds]
        assert r.n_seeds == len(seeds) == 3
        assert r.value == pytest.approx(np.mean(values))
        assert (r.seed_low, r.seed_high) == (min(values), max(values))
        width = np.mean([s.ci_high - s.ci_low for s in seeds])
        assert r.ci_high - r.ci_low == pytest.approx(width)
    # comparisons pair the seeds: base-s1 with tuned-s1 only
    pairs = {(r.checkpoint, r.checkpoint_b) for r in seeded_table.select(analysis="tuning-change")}
    assert pairs == {(f"tuned-s{s}", f"base-s{s}") for s in SEEDS} | {("tuned", "base")}


def test_seed_columns_round_trip_and_reach_the_typed_curves(seeded_table, tmp_path):
    loaded = ResultsTable.from_csv(seeded_table.to_csv(tmp_path / "results.csv"))
    assert loaded == seeded_table
    assert roles_of(loaded) == {k: tuple(v) for k, v in ROLES.items()}
    # the roles come from the seed_checkpoints columns, not from the notes
    blank = ResultsTable(replace(r, notes="") for r in loaded)
    assert roles_of(blank) == roles_of(loaded)
    curve = next(
        c for c in LayerCurve.from_table(loaded, analysis="cross-modal") if c.checkpoint == "tuned"
    )
    assert all(e.n_seeds == 3 and e.seed_low <= e.value <= e.seed_high for e in curve.estimates)
    assert curve.to_table() == loaded.select(analysis="cross-modal", checkpoint="tuned")


def test_a_table_written_before_the_seed_columns_still_loads(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text(
        "analysis,measure,checkpoint,view,layer,value,statistic,checkpoint_b,view_b,layer_b,kind,"
        "ci_low,ci_high,null_mean,null_std,p_value,n_samples,notes\n"
        "cross-modal,cka-linear,base,image/mean,3,0.5,value,base,text/mean,3,similarity,,,,,,,\n"
    )
    (row,) = ResultsTable.from_csv(path)
    assert row.value == 0.5
    assert row.n_seeds is None


def test_roles_are_checked(seeded_store):
    with pytest.raises(ValueError, match="no checkpoint 'tuned-s9'"):
        analyze_store(seeded_store, measures=["cka-linear"], roles={"tuned": ["tuned-s9"]})
    with pytest.raises(ValueError, match="paired seed by seed"):
        analyze_store(
            seeded_store,
            measures=["cka-linear"],
            roles={"base": ["base-s0", "base-s1"], "tuned": ["tuned-s0"]},
        )
    with pytest.raises(ValueError, match="in roles 'base' and 'tuned'"):
        analyze_store(
            seeded_store,
            measures=["cka-linear"],
            roles={"base": ["base-s0"], "tuned": ["base-s0"]},
        )


def _curve(analysis, ckpt, ckpt_b, values, p_values=None):
    return [
        Result(
            analysis, "cka-linear", ckpt, "image/mean", layer, v, checkpoint_b=ckpt_b,
            view_b="text/mean", layer_b=layer, kind="similarity",
            p_value=None if p_values is None else p_values[layer],
        )
        for layer, v in enumerate(values)
    ]  # fmt: skip


def _seeded(tuned_curves, changes, p_values):
    rows = []
    for seed, (curve, change, p) in enumerate(zip(tuned_curves, changes, p_values, strict=True)):
        rows += _curve("cross-modal", f"tuned-s{seed}", f"tuned-s{seed}", curve)
        rows += _curve("tuning-change", f"tuned-s{seed}", f"base-s{seed}", change, p)
    table = ResultsTable(rows)
    roles = {"tuned": [f"tuned-s{s}" for s in range(3)], "base": [f"base-s{s}" for s in range(3)]}
    table.extend(seed_spread(table, roles))
    return table


def test_conclusions_hold_only_where_every_seed_agrees():
    small, tiny = [0.001, 0.001, 0.5], [0.001, 0.001, 0.001]
    table = _seeded(
        tuned_curves=[[0.2, 0.9, 0.5], [0.3, 0.8, 0.4], [0.3, 0.7, 0.4]],
        changes=[[0.3, 0.01, -0.1], [0.4, 0.03, 0.2], [0.35, 0.02, 0.1]],
        p_values=[small, tiny, small],
    )
    found = seed_conclusions(table)
    claims = [(c.subject, c.claim, c.holds) for c in found]
    peak = ("tuned, cka-linear (image/mean vs text/mean)", "peak at layer 1 in all 3 seeds", True)
    assert peak in claims
    change = "tuned − base, cka-linear [similarity]"
    assert (change, "largest change at layer 0 in all 3 seeds", True) in claims
    assert (change, "significant change in all 3 seeds", True) in claims
    significant = next(c for c in found if c.claim.startswith("significant"))
    assert significant.values == "p <= 0.05, holm over layers"
    # layer 0: significant (Holm over 3 layers), one sign, in every seed, and the seeds'
    # changes (0.3, 0.4, 0.35) are clear of their spread: 0.35 -+ 4.30 * 0.05 / sqrt(3);
    # layer 1 (0.01, 0.03, 0.02) is not: 0.02 -+ 4.30 * 0.01 / sqrt(3) reaches below 0;
    # layer 2 only in tuned-s1, whose change there has another sign than in tuned-s0
    assert significant.reading.startswith(
        "layers significant in every seed, one sign, clear of the spread between seeds "
        "(mean change, 95% t-interval over seeds): layer 0 (+0.35, [+0.226, +0.474]); "
        "seed-dependent (* = significant in that seed): layer 1 (tuned-s0 +0.01*, tuned-s1 +0.03*, "
        "tuned-s2 +0.02*; 95% over seeds [-0.00484, +0.0448] holds 0); "
    )
    assert significant.reading.endswith("; layer 2 (tuned-s0 -0.1, tuned-s1 +0.2*, tuned-s2 +0.1)")
    text = summarize(table)
    assert f"  {change}: significant change in all 3 seeds (p <= 0.05, holm over layers)\n" in text
    assert f"\n    {significant.reading}\n" in text


def test_a_layer_significant_in_every_seed_must_be_clear_of_their_spread():
    """Three trained models that all changed, in directions scattered around 0, do not make a
    change that another seed (or another machine) would reproduce."""
    table = _seeded(
        tuned_curves=[[0.2, 0.9], [0.3, 0.8], [0.3, 0.7]],
        changes=[[-0.07, 0.3], [-0.14, 0.31], [-0.26, 0.29]],
        p_values=[[0.001, 0.001]] * 3,
    )
    (significant,) = (c for c in seed_conclusions(table) if c.claim.startswith("significant"))
    assert significant.holds
    # layer 0: every seed significant with one sign, but the t-interval over the three seeds
    # (mean -0.157, s = 0.096) is -0.157 -+ 4.30 * 0.096 / sqrt(3), across 0
    assert (
        "clear of the spread between seeds (mean change, 95% t-interval over seeds): layer 1 ("
        in (significant.reading)
    )
    assert "layer 0 (tuned-s0 -0.07*, tuned-s1 -0.14*, tuned-s2 -0.26*; 95% over seeds [" in (
        significant.reading
    )
    assert significant.reading.endswith("] holds 0)")


def test_seeds_scattered_around_zero_agree_in_a_quarter_of_layers_and_pass_in_alpha():
    """The rate the module notes quote: for changes drawn around 0 with a spread far above their
    resampling error, all three seeds share a sign in 1/4 of the layers; the t-interval over
    seeds excludes 0 in alpha of them."""
    changes = np.random.default_rng(0).normal(size=(4000, 3))
    same_sign = np.mean(np.abs(np.sign(changes).sum(axis=1)) == 3)
    clear = np.mean(
        [
            not low <= 0 <= high
            for low, high in (stats.mean_interval(c, confidence=0.95) for c in changes)
        ]
    )
    assert same_sign == pytest.approx(0.25, abs=0.02)
    assert clear == pytest.approx(0.05, abs=0.01)


def test_disagreeing_seeds_are_reported_with_their_values():
    table = _seeded(
        tuned_curves=[[0.9, 0.5, 0.4], [0.3, 0.8, 0.4], [0.3, 0.7, 0.75]],
        changes=[[0.3, 0.0, 0.1], [-0.4, 0.0, 0.2], [0.1, 0.0, 0.2]],
        p_values=[[0.5] * 3] * 3,
    )
    text = summarize(table)
    assert (
        "peak layer seed-dependent (tuned-s0 layer 0: 0.9, tuned-s1 layer 1: 0.8, "
        "tuned-s2 layer 2: 0.75)"
    ) in text
    assert "largest change seed-dependent (tuned-s0 layer 0: +0.3, tuned-s1 layer 0: -0.4" in text
    assert "significant change not in every seed (in none; p <= 0.05, holm over layers)" in text
    assert "seeds 0.5 to 0.8, n=3" in text  # the role row's spread, beside its CI
    assert "Below: each trained model on its own" in text


def test_seed_dependence_of_a_signed_number():
    same = seed_dependence("gap", {"s0": 0.3, "s1": 0.4})
    assert same == "gap: same sign in all 2 seeds (+0.3 to +0.4)"
    other = seed_dependence("gap", {"s0": 0.3, "s1": -0.1})
    assert other == "gap: seed-dependent (s0 +0.3, s1 -0.1)"
    assert "seed-dependent" in seed_dependence("gap", {"s0": 0.3, "s1": math.nan})


def test_one_checkpoint_per_role_adds_no_seed_rows(planted_store):
    table = analyze_store(
        planted_store,
        measures=["cka-linear"],
        map_measures=[],
        calibration=Calibration(n_permutations=5, n_resamples=5),
    )
    assert all(r.n_seeds is None for r in table)
    assert "Across seeds" not in summarize(table)


def test_cli_roles(seeded_store, tmp_path, capsys):
    from geomalign.cli import main

    out = tmp_path / "results"
    roles = [f"--role={role}={','.join(members)}" for role, members in ROLES.items()]
    argv = ["analyze", str(seeded_store), "--measures", "cka-linear", "--map-measures", ""]
    argv += ["--permutations", "5", "--resamples", "5", "--out", str(out), *roles]
    assert main(argv) == 0
    assert "Across seeds" in capsys.readouterr().out
    assert roles_of(ResultsTable.from_csv(out / "results.csv")) == {
        k: tuple(v) for k, v in ROLES.items()
    }
    with pytest.raises(SystemExit):  # argparse: a usage error
        main([*argv[:-2], "--role", "tuned", "--overwrite"])
    assert "ROLE=CHECKPOINT" in capsys.readouterr().err
