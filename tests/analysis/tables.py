"""Small hand-made results tables for the summary and correction tests."""

from __future__ import annotations

from collections.abc import Sequence

from geomalign.analysis import Result, ResultsTable


def change_rows(
    p_values: Sequence[float], *, draws: int = 100, max_t: Sequence[float] | None = None
) -> ResultsTable:
    """A tuned − base cka-linear curve with one layer per p-value (value 0.1 x layer)."""
    return ResultsTable(
        Result(
            analysis="tuning-change",
            measure="cka-linear",
            checkpoint="tuned",
            view="image/mean",
            layer=layer,
            value=0.1 * layer,
            checkpoint_b="base",
            view_b="text/mean",
            kind="similarity",
            ci_low=0.0,
            ci_high=1.0,
            p_value=p,
            n_samples=100,
            notes=f"95% CI: paired half-sampling B={draws} seed=0",
            n_null_draws=draws,
            max_t_p_value=None if max_t is None else max_t[layer],
        )
        for layer, p in enumerate(p_values)
    )
