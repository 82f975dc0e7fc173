"""The demo end to end, through ``geomalign demo --small``: table, figures and summary."""

import pytest
from _tiny_models import TINY_TESTBED

from geomalign import demo
from geomalign.analysis import ResultsTable
from geomalign.cli import main
from geomalign.demo import DEMO_MEASURES

N_LAYERS = 7  # the testbed's 6 decoder blocks plus the embedding output


@pytest.fixture
def tiny_small_preset(monkeypatch):
    """The pipeline, not the training, is under test: a barely trained testbed of the small
    preset's depth builds in seconds instead of minutes."""
    monkeypatch.setattr(
        demo.TestbedConfig, "small", classmethod(lambda cls, *, seed=0: TINY_TESTBED)
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
        assert r.p_value is not None
        assert 0 < r.p_value <= 1
    for analysis in ("cross-checkpoint", "tuning-change", "best-match", "abstraction-phase"):
        assert len(table.select(analysis=analysis)) > 0
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) == 13  # 3 curve kinds x 3 two-view measures, 2 maps, 2 ID profiles
    assert all(f.stat().st_size > 10_000 for f in figures)
    summary = (out / "summary.txt").read_text()
    assert summary in printed
    for section in ("Cross-modal alignment", "What tuning changed", "Intrinsic dimension"):
        assert section in summary
