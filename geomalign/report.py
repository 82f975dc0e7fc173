"""Write a results table with its figures and text summary into one folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geomalign.analysis import ResultsTable, summarize
from geomalign.plotting import plot_results

__all__ = ["WrittenResults", "write_results"]


@dataclass(frozen=True)
class WrittenResults:
    """Paths :func:`write_results` wrote."""

    table: Path
    summary: Path
    figures: list[Path]


def write_results(
    table: ResultsTable,
    out_dir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("png",),
    correction: str = "auto",
) -> WrittenResults:
    """Write ``results.csv``, ``summary.txt`` and ``figures/`` into ``out_dir``.

    Parameters
    ----------
    table : ResultsTable
        The results.
    out_dir : str or path-like
        Created if missing; files of the same names are replaced.
    formats : sequence of str, default=("png",)
        Figure formats (``png``, ``pdf``, ``svg``).
    correction : {"auto", "max-t", "holm", "bh", "none"}, default="auto"
        Correction across the layers of a curve in the summary (:func:`summarize`).

    Returns
    -------
    WrittenResults
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = table.to_csv(out / "results.csv")
    summary = out / "summary.txt"
    summary.write_text(summarize(table, correction=correction), encoding="utf-8")
    figures = plot_results(table, out / "figures", formats=formats)
    return WrittenResults(table=csv_path, summary=summary, figures=figures)
