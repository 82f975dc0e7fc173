"""Progress bars show on a terminal only."""

from __future__ import annotations

import io
import sys

from geomalign._progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file or a pipe
    with progress_bar(range(3), progress=True) as bar:
        assert bar.disable
        assert list(bar) == [0, 1, 2]
    assert sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with progress_bar(range(3), progress=True, desc="x") as bar:
        assert not bar.disable
        list(bar)
    assert "x: 100%" in sys.stderr.getvalue()
    with progress_bar(range(3), progress=False) as bar:
        assert bar.disable
