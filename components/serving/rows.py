"""The steps every forecaster shares between raw rows and forecasts: the
rows ahead of a request (known columns), original units from a network's
outputs, windows scored from a time on (the retrain gate's holdout), and the
time of each forecast step."""

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.config.schema import DataSpec
from components.data import preprocess
from components.data.windowing import make_windows, target_rows
from components.evaluation import evaluate as evaluation
from components.evaluation.holdout import Holdout
from components.evaluation.intervals import Calibration
from components.models import point_of, predict_all, quantile_levels


def original_forecasts(
    model, x, base, normalizer, targets, transform, calibration, scale=None
):
    """`model`'s forecasts for windows x (W, L, C) in original units: the
    point forecast (W, T, K) and the served quantiles (level -> (W, T, K))
    of `calibration`; `scale` (W, K): each window's series scale (a panel)."""
    outputs = predict_all(model, x)
    levels = quantile_levels(model)
    point = evaluation.to_original(
        point_of(outputs, levels), base, normalizer, targets, transform
    )
    quantiles = None
    if levels:
        quantiles = evaluation.quantiles_to_original(
            outputs, base, normalizer, targets, transform
        )
    return point, calibration.quantiles(point, quantiles, scale)


def windows_since(
    model, prepared, normalizer, features, targets, window, transform, since,
    calibration=None, scale=None, series_index=None,
) -> Holdout | None:
    """The model's forecasts (and its served quantiles), the actual values
    and persistence's, original units, for every window of `prepared` (one
    series, cleaned) whose first target label is at or after `since`; None
    when there is none. `scale` (K,): the series' scale (a panel);
    `series_index`: its training index, for a model that embeds it."""
    scaled = preprocess.scale_split(prepared, normalizer, features, targets)
    inputs = scaled.inputs
    if series_index is not None:
        inputs = preprocess.with_series_index(inputs, [len(inputs)], series_index)
    x, _ = make_windows(inputs, scaled.targets, window)
    if not len(x):
        return None
    actual, base = evaluation.level_windows(scaled.levels, window)
    if scale is not None:
        scale = np.broadcast_to(np.asarray(scale, np.float64), (len(x), len(targets)))
    forecast, quantiles = original_forecasts(
        model, x, base, normalizer, targets, transform, calibration or Calibration(),
        scale,
    )  # fmt: skip
    persistence = evaluation.persistence_forecast(scaled.levels, window)
    index = scaled.index[target_rows(len(scaled.inputs), window)]
    keep = np.asarray(index >= since)
    if not keep.any():
        return None
    return Holdout(
        index[keep], actual[keep], forecast[keep], persistence[keep],
        {q: values[keep] for q, values in quantiles.items()},
    )  # fmt: skip


def datetime_steps(index: pd.Index, frequency: str | None, ahead: np.ndarray):
    """UTC times (zone-less) `ahead` steps of `frequency` after the last of
    `index`, or None when the index is not datetime or has no frequency."""
    if not (isinstance(index, pd.DatetimeIndex) and frequency):
        return None
    step = pd.tseries.frequencies.to_offset(frequency)
    return naive_utc(pd.DatetimeIndex([index[-1] + step * int(a) for a in ahead]))


def split_future(
    frame: pd.DataFrame, data: DataSpec, lead: int, who: str = "model input"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A forecast's raw rows -> (history, the rows ahead). With `data.known`
    the frame ends with exactly `lead` rows whose targets are empty and whose
    known columns hold the planned values; each is checked, naming the
    column and the first time that is missing."""
    if not lead:
        return frame, frame.iloc[:0]
    empty = frame[list(data.targets)].isna().all(axis=1).to_numpy()
    observed = np.flatnonzero(~empty)
    ahead = len(frame) - (observed[-1] + 1 if len(observed) else 0)
    if ahead != lead:
        raise DataError(
            f"{who}: `data.known` {data.known} must be given for the {lead} rows "
            f"after the last observation (targets left empty), got {ahead} such "
            "rows."
        )
    future = frame.iloc[len(frame) - lead :]
    for column in data.known:
        gaps = future[column].isna().to_numpy()
        if gaps.any():
            first = future.iloc[int(gaps.argmax())]
            when = first.get(data.time_column, future.index[int(gaps.argmax())])
            raise DataError(
                f"{who}: known column {column!r} is missing for the row ahead at "
                f"{when}; a forecast needs every planned value up to the horizon."
            )
    return frame.iloc[: len(frame) - lead], future


def lead_known(
    frame: pd.DataFrame, future: pd.DataFrame, known: list[str], lead: int
) -> pd.DataFrame:
    """`frame` (prepared history) with each known column led by `lead` rows,
    its last values taken from the rows ahead, as training leads them."""
    if not lead:
        return frame
    led = {}
    for column in known:
        values = np.concatenate(
            [frame[column].to_numpy(np.float64), future[column].to_numpy(np.float64)]
        )
        led[column] = values[lead:]
    return frame.assign(**led)


def with_future_rows(frame: pd.DataFrame, targets: list[str], lead: int) -> pd.DataFrame:
    """`frame` with the targets of its last `lead` rows emptied: the shape of
    a forecast request with known columns."""
    if not lead:
        return frame
    out = frame.copy()
    out.loc[out.index[-lead:], list(targets)] = np.nan
    return out


def naive_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """UTC wall time without a zone (rnnflow reads zone-less times as UTC)."""
    return index.tz_convert("UTC").tz_localize(None) if index.tz else index


def rows_up_to(frame: pd.DataFrame, time_column: str | None, as_of) -> pd.DataFrame:
    """The rows of a forecast request observed at or before `as_of` (a
    backfilled forecast reads nothing later): by the time column, or by row
    number when the data has none."""
    if time_column is None:
        try:
            last = int(as_of)
        except ValueError:
            raise DataError(
                f"--as-of {as_of!r}: the data has no `data.time_column`, so the "
                "origin is a row number (0 is the first row)."
            ) from None
        kept = frame.iloc[: last + 1]
    else:
        times = frame[time_column]
        try:
            if pd.api.types.is_numeric_dtype(times):
                limit, values = float(as_of), times
            else:
                values = pd.to_datetime(times, utc=True)
                limit = pd.Timestamp(as_of)
                limit = limit.tz_localize("UTC") if limit.tzinfo is None else limit
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"--as-of {as_of!r} is not a time like `{time_column}`'s: {exc}"
            ) from None
        kept = frame[(values <= limit).to_numpy()]
    if kept.empty:
        raise DataError(f"--as-of {as_of!r}: no row is that old; nothing to forecast from.")
    return kept


def backfill_origins(frame: pd.DataFrame, time_column: str | None, as_of: str) -> list:
    """The origins `--as-of` names: itself, or for a range `START..END`
    every time (row number without a time column) in the data from START to
    END, in order, as `rows_up_to` reads them."""
    if ".." not in as_of:
        return [as_of]
    start, end = (part.strip() for part in as_of.split("..", 1))
    if time_column is None:
        values = pd.Series(range(len(frame)), dtype="int64")
    else:
        values = pd.Series(frame[time_column].unique())
    try:
        if pd.api.types.is_numeric_dtype(values):
            low, high, keys = float(start), float(end), values
        else:
            keys = pd.to_datetime(values, utc=True)
            low, high = (_utc(pd.Timestamp(x)) for x in (start, end))
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"--as-of {as_of!r}: expected START..END, two times like "
            f"`{time_column or 'the row number'}`'s ({exc})"
        ) from None
    if low > high:
        raise DataError(f"--as-of {as_of!r}: START is after END.")
    picked = sorted(values[((keys >= low) & (keys <= high)).to_numpy()])
    if not picked:
        raise DataError(f"--as-of {as_of!r}: no time in the data falls in that range.")
    return [p.isoformat() if isinstance(p, pd.Timestamp) else str(p) for p in picked]


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
