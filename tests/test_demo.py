"""The demo end to end, through ``geomalign demo --small``: table, figures and summary."""

import dataclasses
import re

import pytest
from _tiny_models import TINY_TESTBED

from geomalign import demo
from geomalign.analysis import ResultsTable, seed_conclusions
from geomalign.cli import main
from geomalign.demo import DEMO_MEASURES

N_LAYERS = 7  # the testbed's 6 decoder blocks plus the embedding output


@pytest.fixture
def tiny_small_preset(monkeypatch):
    """The pipeline, not the training, is under test: a barely trained testbed of the small
    preset's depth builds in seconds instead of minutes."""
    monkeypatch.setattr(
        demo.TestbedConfig,
        "small",
        classmethod(lambda cls, *, seed=0: dataclasses.replace(TINY_TESTBED, seed=seed)),
    )


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_small_preset")
def test_small_demo_writes_table_figures_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--small", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = ResultsTable.from_csv(out / "results.csv")
    for measure in DEMO_MEASURES:
        analysis = "id-profile" if measure.startswith("id-") else "cross-modal"
        for ckpt in ("base", "tuned"):
            rows = table.select(analysis=analysis, measure=measure, checkpoint=ckpt)
            assert sorted(r.layer for r in rows if r.view == "image/mean") == list(range(N_LAYERS))
            assert all(r.ci_low is not None for r in rows)
    for r in table.select(analysis="cross-modal", measure="cka-linear"):
        if r.n_seeds is not None:  # a role row: mean and range over the 3 seeds
            assert r.n_seeds == 3
            assert r.seed_low <= r.value <= r.seed_high
            continue
        assert r.p_value is not None
        assert 0 < r.p_value <= 1
    for analysis in ("cross-checkpoint", "tuning-change", "best-match", "abstraction-phase"):
        assert len(table.select(analysis=analysis)) > 0
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) == 17  # 3 curve kinds x 3 two-view measures, 6 maps, 2 ID profiles
    assert all(f.stat().st_size > 10_000 for f in figures)
    summary = (out / "summary.txt").read_text()
    assert summary in printed
    for section in ("Cross-modal alignment", "What tuning changed", "Intrinsic dimension"):
        assert section in summary


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?")


def _same_summary(a: str, b: str, *, rel: float = 0.05, abs_: float = 0.02) -> bool:
    """Equal text with equal integers (layers, counts) and decimals within a tolerance."""
    numbers_a, numbers_b = _NUMBER.findall(a), _NUMBER.findall(b)
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b) or len(numbers_a) != len(numbers_b):
        return False
    for x, y in zip(numbers_a, numbers_b, strict=True):
        if not any(c in x + y for c in ".e%"):
            if x != y:
                return False
        elif x != y:
            fx, fy = (float(v.rstrip("%")) / (100 if v.endswith("%") else 1) for v in (x, y))
            if abs(fx - fy) > abs_ + rel * abs(fy):
                return False
    return True


def test_summary_comparison_tolerates_rounding_only():
    assert _same_summary("layer 5: 0.653 (p=0.0099), 70%", "layer 5: 0.652 (p=0.0099), 71%")
    assert not _same_summary("layer 5: 0.653", "layer 4: 0.653")
    assert not _same_summary("layer 5: 0.653", "layer 5: 0.853")
    assert not _same_summary("peak at layer 5 in all 3 seeds", "peak layer seed-dependent")


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_small_preset")
def test_small_demo_summary_is_the_same_under_one_and_two_threads(tmp_path):
    """Another thread count stands in for another CPU: testbeds built, extracted and analysed
    with 1 and with 2 threads give the same conclusions, seed by seed and across seeds."""
    runs = [
        demo.run_demo(
            tmp_path / f"demo{threads}",
            small=True,
            n_seeds=3,
            measures=("cka-linear",),
            cache_dir=tmp_path / f"cache{threads}",
            num_threads=threads,
            progress=False,
        )
        for threads in (1, 2)
    ]
    summaries = [run.summary for run in runs]
    assert "Across seeds" in summaries[0]
    claims = [[(c.subject, c.claim) for c in seed_conclusions(r.results)] for r in runs]
    assert claims[0]
    assert claims[0] == claims[1]
    assert _same_summary(*summaries), "\n".join(summaries)
