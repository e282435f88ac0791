"""The checks and reshaping a raw frame goes through before it is a series:
the time index (sorted, unique, on its frequency), numeric columns, missing
values, wide panels to long, calendar features. Each error names the source,
the column and the first bad row.
"""

import numpy as np
import pandas as pd

from components.common.errors import DataError, invalid_value
from components.config.schema import DataSpec

WIDE_ID, WIDE_VALUE = "series", "value"  # a wide panel's id and value columns


def wide_to_long(
    frame: pd.DataFrame, spec: DataSpec, source: str
) -> tuple[pd.DataFrame, DataSpec]:
    """`data.layout: panel`: each target column (default every numeric one)
    becomes a series named after it, in a long table (time, series, value),
    with the settings to read that table as a panel."""
    time = spec.time_column
    if time not in frame.columns:
        raise DataError(
            f"{source}: `data.time_column` {time!r} is not a column; "
            f"available: {list(map(str, frame.columns))}."
        )
    others = [c for c in frame.columns if c != time]
    numeric = [c for c in others if looks_numeric(frame[c])]
    columns = pick_columns(frame, spec.targets, numeric, "data.targets", source)
    long = frame.melt(
        id_vars=[time], value_vars=columns, var_name=WIDE_ID, value_name=WIDE_VALUE
    )
    long[WIDE_ID] = long[WIDE_ID].astype(str)
    as_long = spec.model_copy(
        update={"layout": "table", "id_column": WIDE_ID, "targets": [WIDE_VALUE]}
    )
    return long, as_long


def calendar_features(index: pd.Index, names: list[str], source: str) -> pd.DataFrame:
    """Sine/cosine pairs of hour of day, day of week and week of year.

    A cyclic encoding puts 23:00 next to 00:00 and Sunday next to Monday.
    """
    if not names:
        return pd.DataFrame(index=index)
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{source}: `data.calendar` {names} needs a datetime `data.time_column`, "
            f"but the time index holds {index.dtype} values."
        )
    position = {
        "hour": (index.hour + index.minute / 60) / 24,
        "day": index.day_of_week / 7,
        "week": (index.isocalendar().week.to_numpy() - 1) / 52.1775,
    }
    columns = {}
    for name in names:
        angle = 2 * np.pi * np.asarray(position[name], dtype=np.float64)
        columns[f"{name}_sin"], columns[f"{name}_cos"] = np.sin(angle), np.cos(angle)
    return pd.DataFrame(columns, index=index)


def index_by_time(frame: pd.DataFrame, column: str, source: str) -> pd.DataFrame:
    if column not in frame.columns:
        raise DataError(
            f"{source}: `data.time_column` {column!r} is not a column; "
            f"available: {list(map(str, frame.columns))}."
        )
    index = frame[column]
    if not pd.api.types.is_numeric_dtype(index):
        try:
            index = pd.to_datetime(index, utc=True)
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{source}: column {column!r} is not a time: {exc}"
            ) from None
    if index.duplicated().any():
        row = int(np.argmax(index.duplicated().to_numpy()))
        raise DataError(
            f"{source}: time column {column!r} has a duplicate value "
            f"'{index.iloc[row]}' at row {row}."
        )
    if not index.is_monotonic_increasing:
        later = index.iloc[1:].reset_index(drop=True)
        row = int(
            np.argmax((later < index.iloc[:-1].reset_index(drop=True)).to_numpy())
        )
        raise DataError(
            f"{source}: time column {column!r} is not sorted: row {row + 1} "
            f"('{index.iloc[row + 1]}') comes before row {row} ('{index.iloc[row]}')."
        )
    return frame.drop(columns=[column]).set_index(pd.Index(index, name=column))


def looks_numeric(column: pd.Series) -> bool:
    """Numeric, or text in which some values parse as numbers: such a column is
    data with bad cells (reported by `as_float`), not a label to skip."""
    if pd.api.types.is_numeric_dtype(column):
        return True
    if pd.api.types.is_bool_dtype(column) or column.isna().all():
        return False
    return bool(pd.to_numeric(column, errors="coerce").notna().any())


def pick_columns(
    frame: pd.DataFrame,
    wanted: list[str] | None,
    numeric: list[str],
    key: str,
    source: str,
) -> list[str]:
    if wanted is None:
        if not numeric:
            raise DataError(f"{source}: no numeric column found; set `{key}`.")
        return list(map(str, numeric))
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: `{key}` names column(s) {missing} that the data does not "
            f"have; available: {list(map(str, frame.columns))}."
        )
    return list(wanted)


def as_float(column: pd.Series, name: str, source: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{source}: column {name!r} must be numeric; row {row} holds "
            f"{column.iloc[row]!r}."
        )
    values = values.astype("float64")
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        row = int(np.argmax(infinite))
        raise DataError(
            f"{source}: column {name!r} holds a non-finite value "
            f"{float(values.iloc[row])} at row {row}."
        )
    return values


def missing_message(frame: pd.DataFrame, counts: dict[str, int], source: str) -> str:
    first = {c: int(np.argmax(frame[c].isna().to_numpy())) for c in counts}
    detail = ", ".join(
        f"{c!r}: {n} (first at row {first[c]})" for c, n in counts.items()
    )
    return (
        f"{source}: missing values in {detail}. Set `data.missing` to interpolate, "
        "ffill or drop to handle them; rnnflow does not impute silently."
    )


def check_frequency(index: pd.Index, frequency: str | None, source: str) -> str | None:
    """Check a declared frequency (gaps are errors) or infer one (None if irregular)."""
    if not isinstance(index, pd.DatetimeIndex):
        if frequency:
            raise DataError(
                f"{source}: `data.frequency` {frequency!r} needs datetime time stamps, "
                f"got {index.dtype} values."
            )
        return None
    if not frequency:
        return _infer_frequency(index)
    try:
        expected = pd.date_range(index[0], index[-1], freq=frequency)
    except ValueError as exc:
        raise DataError(
            invalid_value("data.frequency", f"a pandas frequency ({exc})", frequency)
        ) from None
    off_grid = index.difference(expected)
    if len(off_grid):
        raise DataError(
            f"{source}: {len(off_grid)} time stamp(s) are not on the "
            f"`data.frequency` {frequency!r} grid, the first {off_grid[0]}."
        )
    gaps = expected.difference(index)
    if len(gaps):
        raise DataError(
            f"{source}: {len(gaps)} time stamp(s) missing for `data.frequency` "
            f"{frequency!r}; first gaps: {_spans(gaps, expected)}."
        )
    return frequency


def _infer_frequency(index: pd.DatetimeIndex) -> str | None:
    if len(index) < 3:
        return None
    with pd.option_context("future.infer_freq_returns_offset", True):
        offset = pd.infer_freq(index)
    return offset.freqstr if offset is not None else None


def _spans(missing: pd.DatetimeIndex, grid: pd.DatetimeIndex, limit: int = 3) -> str:
    positions = grid.get_indexer(missing)
    runs, start = [], 0
    for i in range(1, len(positions) + 1):
        if i == len(positions) or positions[i] != positions[i - 1] + 1:
            runs.append((missing[start], missing[i - 1], i - start))
            start = i
    shown = [f"{a} to {b} ({n} step{'s' if n > 1 else ''})" for a, b, n in runs[:limit]]
    return "; ".join(shown) + (
        f"; and {len(runs) - limit} more" if len(runs) > limit else ""
    )
