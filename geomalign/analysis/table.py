"""The tidy results table every analysis (and every intervention) writes: one row per number.

A :class:`Result` is one measured number with where it came from (checkpoint, view, layer, and for
comparisons the second checkpoint, view and layer), its calibration (bootstrap CI, permutation null)
and free-text notes. A :class:`ResultsTable` is an ordered list of them with CSV (and, with
pyarrow, parquet) save and load; a saved table loads back equal to the one saved (floats are
written with ``repr``, which round-trips; parquet keeps missing entries apart from NaN).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas
    import pyarrow

__all__ = ["COLUMNS", "Result", "ResultsTable"]


@dataclass(frozen=True)
class Result:
    """One number of an analysis, with its provenance and calibration.

    Missing entries are ``None`` (an empty cell in the CSV); a float field that holds ``nan`` means
    the computation ran and gave NaN.

    Parameters
    ----------
    analysis : str
        What produced the row: ``"cross-modal"``, ``"cross-checkpoint"``, ``"layer-map"``,
        ``"best-match"``, ``"id-profile"``, ``"abstraction-phase"``, ``"tuning-change"``, or another
        producer's name (e.g. an intervention).
    measure : str
        Registry name of the measure (``"cka-linear"``, ``"id-gride"``, ...) or the name of the
        producer's score (e.g. ``"accuracy"``).
    checkpoint : str
        Checkpoint of the (first) view.
    view : str
        ``"<modality>/<pooling>"`` of the (first) view, e.g. ``"image/mean"``.
    layer : int or None
        Real layer number of the (first) view; 0 is the embedding output, ``L`` the last block.
    value : float
        The number itself. For ``statistic != "value"`` rows it is that statistic (e.g. a layer).
    statistic : str, default="value"
        What ``value`` is when not the measure itself, e.g. ``"peak_layer"``, ``"onset"``.
    checkpoint_b, view_b, layer_b : str, str, int or None
        The second view of a comparison; ``None`` for one-view quantities (intrinsic dimension).
    kind : str or None
        ``"similarity"`` (higher = more alike), ``"distance"`` (lower = more alike) or
        ``"dimension"``.
    ci_low, ci_high : float or None
        Bootstrap confidence interval of ``value``.
    null_mean, null_std : float or None
        Mean and standard deviation of the permutation null.
    p_value : float or None
        Permutation (or bootstrap, for ``"tuning-change"``) p-value; see the producer's docstring
        for its alternative.
    n_samples : int or None
        Number of samples the value was computed on.
    notes : str
        Anything a reader needs to interpret the row, e.g. ``"subsampled n=2000 of 9000 seed=0"``.
    seed_low, seed_high : float or None
        Between-seed spread of a row that stands for several checkpoints of one role (base or
        tuned models trained from different seeds, see
        :func:`~geomalign.analysis.seed_spread`): the smallest and largest value over the
        seeds, beside the resampling interval ``ci_low, ci_high``.
    n_seeds : int or None
        Number of seeds behind such a row; None for a row of one checkpoint.
    confidence : float or None
        Level of the interval ``[ci_low, ci_high]`` (e.g. 0.95); None without an interval.
    n_resamples : int or None
        Number of resamples the interval was computed from.
    n_null_draws : int or None
        Number of null draws (permutations, sign flips or resamples) the ``p_value`` rests on,
        which sets its floor ``1 / (n_null_draws + 1)``; None without a p-value.
    undefined_reason : str
        Why ``value`` is NaN where the measure is undefined on the rows read (e.g. ``"all 200
        rows of X are identical"``); empty for a defined value. The notes then start with
        ``"undefined (NaN): <reason>"`` too.
    max_t_p_value : float or None
        The row's p-value adjusted over the layers of its curve by the max-T rule
        (:func:`geomalign.stats.max_t_adjusted`, from the joint permutation null of the layers);
        None where the curve has no such joint null.
    n_subsample : int or None
        Size of the seeded subsample of the store's rows the row was computed on (for a value
        streamed over every row: the subsample its interval and null were computed on); None
        when every row was read. The notes name the subsample and its seed.
    seed_checkpoints, seed_checkpoints_b : str or None
        The checkpoints (comma-separated, in seed order) behind a row whose ``checkpoint`` (and
        ``checkpoint_b``) is a role standing for several seeds; None for other rows.
    """

    analysis: str
    measure: str
    checkpoint: str
    view: str
    layer: int | None
    value: float
    statistic: str = "value"
    checkpoint_b: str | None = None
    view_b: str | None = None
    layer_b: int | None = None
    kind: str | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    null_mean: float | None = None
    null_std: float | None = None
    p_value: float | None = None
    n_samples: int | None = None
    notes: str = ""
    seed_low: float | None = None
    seed_high: float | None = None
    n_seeds: int | None = None
    confidence: float | None = None
    n_resamples: int | None = None
    n_null_draws: int | None = None
    undefined_reason: str = ""
    max_t_p_value: float | None = None
    n_subsample: int | None = None
    seed_checkpoints: str | None = None
    seed_checkpoints_b: str | None = None


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Result))
_INT_COLUMNS = frozenset(
    {"layer", "layer_b", "n_samples", "n_seeds", "n_resamples", "n_null_draws", "n_subsample"}
)
_FLOAT_COLUMNS = frozenset(
    {"value", "ci_low", "ci_high", "null_mean", "null_std", "p_value", "seed_low", "seed_high",
     "confidence", "max_t_p_value"}
)  # fmt: skip
# Headers of tables written before the last columns existed (they load with those empty):
# up to notes, then with the seed columns, then with the interval's level and resample count.
_OLDER_HEADERS = tuple(
    COLUMNS[: COLUMNS.index(last) + 1]
    for last in ("notes", "n_seeds", "n_resamples", "n_null_draws")
)
_OPTIONAL_STR_COLUMNS = frozenset(
    {"checkpoint_b", "view_b", "kind", "seed_checkpoints", "seed_checkpoints_b"}
)


def _format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _parse_cell(column: str, text: str, where: str) -> object:
    if column in _INT_COLUMNS or column in _FLOAT_COLUMNS or column in _OPTIONAL_STR_COLUMNS:
        if text == "":
            if column == "value":
                raise ValueError(f"{where}: column 'value' is empty; every row needs a value.")
            return None
        if column in _OPTIONAL_STR_COLUMNS:
            return text
        try:
            return int(text) if column in _INT_COLUMNS else float(text)
        except ValueError:
            expected = "an integer" if column in _INT_COLUMNS else "a number"
            raise ValueError(
                f"{where}: column {column!r} must hold {expected} or be empty; got {text!r}."
            ) from None
    return text


def layer_number(row: Result, column: str = "layer") -> int:
    """``row.layer`` (or ``row.layer_b``) as an int; ValueError when the row has none."""
    value = getattr(row, column)
    if value is None:
        raise ValueError(f"this {row.analysis!r} row has no {column}: {row}.")
    return int(value)


def _coerce(row: Result) -> Result:
    """Return ``row`` with numpy scalars turned into Python ``int``/``float`` (CSV round trip)."""
    changes: dict[str, Any] = {}
    for name in COLUMNS:
        value = getattr(row, name)
        if value is None:
            continue
        if name in _INT_COLUMNS:
            if isinstance(value, (bool, np.bool_)) or int(value) != value:
                raise TypeError(f"Result.{name} must be an integer or None; got {value!r}.")
            if type(value) is not int:
                changes[name] = int(value)
        elif name in _FLOAT_COLUMNS:
            if type(value) is not float:
                changes[name] = float(value)
        elif not isinstance(value, str):
            raise TypeError(f"Result.{name} must be a str; got {type(value).__name__} {value!r}.")
    return replace(row, **changes) if changes else row


class ResultsTable:
    """An ordered, appendable list of :class:`Result` rows, saved and loaded as CSV.

    Parameters
    ----------
    rows : iterable of Result, default=()
        Initial rows.

    Examples
    --------
    >>> t = ResultsTable([Result("cross-modal", "cka-linear", "base", "image/mean", 3, 0.8)])
    >>> len(t.select(measure="cka-linear", layer=3))
    1
    """

    def __init__(self, rows: Iterable[Result] = ()) -> None:
        self._rows: list[Result] = []
        self.extend(rows)

    def append(self, row: Result) -> None:
        """Add one row (numpy scalars are converted to Python numbers)."""
        if not isinstance(row, Result):
            raise TypeError(
                f"ResultsTable rows must be Result instances; got {type(row).__name__}."
            )
        self._rows.append(_coerce(row))

    def extend(self, rows: Iterable[Result]) -> None:
        """Add several rows in order."""
        if isinstance(rows, ResultsTable):  # converted already
            self._rows.extend(rows._rows)
            return
        for row in rows:
            self.append(row)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Result]:
        return iter(self._rows)

    def __getitem__(self, index: int) -> Result:
        return self._rows[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResultsTable):
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(_same_row(a, b) for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ResultsTable({len(self)} rows)"

    def select(self, **criteria: object) -> ResultsTable:
        """Rows whose columns equal every given value, e.g. ``select(measure="cka-linear")``."""
        unknown = sorted(set(criteria) - set(COLUMNS))
        if unknown:
            raise ValueError(f"select(): unknown column(s) {unknown}; columns are {list(COLUMNS)}.")
        return ResultsTable(
            r for r in self._rows if all(getattr(r, k) == v for k, v in criteria.items())
        )

    def unique(self, column: str) -> list[object]:
        """Distinct values of ``column`` in order of first appearance."""
        if column not in COLUMNS:
            raise ValueError(f"unique(): unknown column {column!r}; columns are {list(COLUMNS)}.")
        return list(dict.fromkeys(getattr(r, column) for r in self._rows))

    def column(self, column: str) -> np.ndarray:
        """One column as an array (float columns as float64 with ``None`` -> NaN)."""
        if column not in COLUMNS:
            raise ValueError(f"column(): unknown column {column!r}; columns are {list(COLUMNS)}.")
        values = [getattr(r, column) for r in self._rows]
        if column in _FLOAT_COLUMNS or column in _INT_COLUMNS:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=object)

    def to_pandas(self) -> pandas.DataFrame:
        """The table as a pandas DataFrame, one column per field of :class:`Result`.

        Integer columns with missing entries are pandas' nullable ``Int64``; missing floats NaN,
        missing strings None. Needs pandas (not a dependency of geomalign).
        """
        try:
            import pandas
        except ImportError as error:
            message = "ResultsTable.to_pandas() needs pandas (pip install pandas)."
            raise ImportError(message) from error
        frame = pandas.DataFrame([astuple(r) for r in self._rows], columns=list(COLUMNS))
        for column in COLUMNS:
            if column in _INT_COLUMNS:
                frame[column] = frame[column].astype("Int64")
            elif column in _FLOAT_COLUMNS:
                frame[column] = frame[column].astype("float64")
        return frame

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the table to ``path`` (header row = :data:`COLUMNS`) and return the path."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for row in self._rows:
                writer.writerow([_format_cell(v) for v in astuple(row)])
        return path

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the table to a parquet file at ``path`` and return the path.

        One column per field of :class:`Result`: integers as nullable int64, floats as float64
        (a missing entry is null, distinct from a NaN value), strings as UTF-8. Needs pyarrow
        (the ``parquet`` extra: ``pip install 'geomalign[parquet]'``); pandas and polars read the
        file directly.
        """
        parquet = _pyarrow_parquet("to_parquet")
        path = Path(path)
        parquet.write_table(self._arrow_table(), path)
        return path

    @classmethod
    def from_parquet(cls, path: str | os.PathLike[str]) -> ResultsTable:
        """Load a table written by :meth:`to_parquet` (needs pyarrow, as that does).

        Files written before the ``n_null_draws`` column, or before the ``undefined_reason`` to
        ``seed_checkpoints_b`` columns, load with None (an empty reason) there.
        """
        parquet = _pyarrow_parquet("from_parquet")
        path = Path(path)
        columns = parquet.read_schema(path).names
        if tuple(columns) not in (COLUMNS, *_OLDER_HEADERS[-2:]):
            raise ValueError(
                f"{path}: expected a results table with the columns {list(COLUMNS)}; got {columns}."
            )
        records = parquet.read_table(path).to_pylist()
        return cls(Result(**record) for record in records)

    def _arrow_table(self) -> pyarrow.Table:
        import pyarrow

        def kind(column: str) -> pyarrow.DataType:
            if column in _INT_COLUMNS:
                return pyarrow.int64()
            return pyarrow.float64() if column in _FLOAT_COLUMNS else pyarrow.string()

        arrays = {c: pyarrow.array([getattr(r, c) for r in self._rows], type=kind(c))
                  for c in COLUMNS}  # fmt: skip
        return pyarrow.table(arrays)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> ResultsTable:
        """Load a table written by :meth:`to_csv` (or any CSV with the same header).

        Tables written before the seed columns, the ``confidence`` and ``n_resamples`` columns
        or the ``n_null_draws`` column load with None there (and before the ``undefined_reason``
        to ``seed_checkpoints_b`` columns, with an empty reason and None).
        """
        path = Path(path)
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or tuple(header) not in (COLUMNS, *_OLDER_HEADERS):
                raise ValueError(
                    f"{path}: expected a results table whose header is {list(COLUMNS)}; "
                    f"got {header}."
                )
            columns = tuple(header)
            rows = []
            for line_no, cells in enumerate(reader, start=2):
                where = f"{path}, line {line_no}"
                if len(cells) != len(columns):
                    raise ValueError(f"{where}: expected {len(columns)} cells, got {len(cells)}.")
                values = {c: _parse_cell(c, t, where) for c, t in zip(columns, cells, strict=True)}
                rows.append(Result(**values))  # type: ignore[arg-type]
        return cls(rows)


def _pyarrow_parquet(method: str) -> Any:
    """``pyarrow.parquet``, or an ImportError naming the extra that provides it."""
    try:
        import pyarrow.parquet
    except ImportError as error:
        message = (
            f"ResultsTable.{method}() needs pyarrow, which is not installed; install the parquet "
            "extra: pip install 'geomalign[parquet]'."
        )
        raise ImportError(message) from error
    return pyarrow.parquet


def _same_row(a: Result, b: Result) -> bool:
    """Field-wise equality in which NaN equals NaN."""
    for x, y in zip(astuple(a), astuple(b), strict=True):
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True
