"""A trained network with everything it needs to go from raw observations to
forecasts in original units: the train-split normalizer, the window, the data
settings and the column names.

Serving and training share one code path: raw rows go through the same
validation (`ingest.series_from_frame`), the same per-split cleaning and
transform (`preprocess.prepare_split`) and the same re-integration
(`evaluation.to_original`) as the training run's own test forecasts.

Saved as a folder: `model.keras` (loaded with `safe_mode=True`) and
`forecaster.json` (everything else).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from components.evaluation import evaluate as evaluation

from components.data import ingest, preprocess
from components.config.schema import DataSpec, WindowSpec
from components.common.errors import DataError
from components.evaluation.intervals import Calibration
from components.models import point_of, predict_all, quantile_levels
from components.data.windowing import make_windows, target_rows

FORMAT_VERSION = 1
_MODEL_FILE = "model.keras"
_META_FILE = "forecaster.json"


@dataclass(frozen=True)
class Backtest:
    """Forecasts for every window whose first target is at or after a cut-off.

    Attributes:
        index: (W,) label of each window's first target row.
        actual: (W, T, K) true targets, original units.
        forecast: (W, T, K) the network's forecasts, original units.
        persistence: (W, T, K) the last observed value repeated.
        quantiles: served quantile level -> (W, T, K), original units.
    """

    index: pd.Index
    actual: np.ndarray
    forecast: np.ndarray
    persistence: np.ndarray
    quantiles: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Forecaster:
    """`model` plus what turns raw rows into its inputs and its outputs back.

    Attributes:
        data: the training run's data settings with `features`, `targets` and
            `frequency` pinned to what it used (calendar features aside) and
            the path redacted; only validation settings matter here.
        calendar_columns: input columns computed from the time index.
    """

    model: object  # keras.Model; untyped so this module imports without Keras
    normalizer: preprocess.Normalizer
    data: DataSpec
    window: WindowSpec
    calendar_columns: list[str]
    # How the served quantile columns come from the model's outputs
    # (`components.evaluation.intervals.Calibration`), original units.
    calibration: Calibration = field(default_factory=Calibration)

    @classmethod
    def from_training(
        cls, model, normalizer, config, series: ingest.LoadedSeries, calibration=None
    ) -> "Forecaster":
        """Package what a training run used, from its config and loaded series,
        and its intervals' `calibration`."""
        raw_features = [f for f in series.features if f not in series.calendar_columns]
        data = config.data.model_copy(
            update={
                "path": series.source,
                "sha256": None,
                "features": raw_features,
                "targets": list(series.targets),
                "frequency": config.data.frequency or series.frequency,
            }
        )
        return cls(
            model, normalizer, data, config.window, list(series.calendar_columns),
            calibration or Calibration(),
        )  # fmt: skip

    @property
    def features(self) -> list[str]:
        """The model's input columns: raw features, then calendar features
        (the order `ingest` builds them in)."""
        return [*self.data.features, *self.calendar_columns]

    @property
    def targets(self) -> list[str]:
        return list(self.data.targets)

    @property
    def history_rows(self) -> int:
        """Raw rows one forecast needs: the window, plus one under a transform."""
        return self.window.input_width + (self.data.transform != "none")

    @property
    def input_columns(self) -> list[str]:
        """Raw columns an input frame must hold (plus the time column, if any)."""
        raw = self.data.features
        return raw + [t for t in self.targets if t not in raw]

    def input_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The raw columns a forecast reads from `frame`, as a caller sends them:
        the time column first (when trained with one; UTC without a zone, which
        MLflow's signature check requires), then `input_columns`."""
        out = frame[self.input_columns]
        if not self.data.time_column:
            return out.reset_index(drop=True)
        if isinstance(out.index, pd.DatetimeIndex):
            out = out.set_axis(_naive_utc(out.index))
        return out.reset_index(names=self.data.time_column)

    @property
    def lead(self) -> int:
        """Rows ahead a forecast needs the known columns for (0: none)."""
        return preprocess.known_lead(self.data, self.window)

    def example_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The logged input example: the last `history_rows` rows, and with
        known columns the `lead` rows after them, their targets emptied."""
        return with_future_rows(
            frame.iloc[-(self.history_rows + self.lead) :], self.targets, self.lead
        )

    def forecast(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The next `horizon` steps after the last row of `frame`.

        Args:
            frame: raw observations in time order, at least `history_rows` rows,
                with the input columns (and the time column when trained with one).

        Returns:
            one row per horizon step: `step` (1..T), `time` (UTC) when the
            series has a time index and a frequency, one column per target,
            then the quantile columns of each target (`{target}_q0.1`, ...):
            a quantile model's levels, or a point model's calibrated intervals
            (`_q0.1` and `_q0.9` for the 80 % interval); with quantiles, the
            target's own column is the median.
        """
        frame, future = split_future(frame, self.data, self.lead)
        series = self._validated(frame)
        tail = series.frame.iloc[-self.history_rows :]
        prepared = self._prepare(tail)
        if len(prepared.frame) < self.window.input_width:
            raise DataError(
                f"model input: a forecast needs the last {self.history_rows} rows "
                f"without gaps after `data.missing={self.data.missing}`, "
                f"got {len(prepared.frame)} usable rows."
            )
        inputs = lead_known(prepared.frame, future, self.data.known, self.lead)
        x = self.normalizer.transform(inputs, self.features)[None]  # (1, L, C)
        base = prepared.levels.to_numpy(np.float64)[-1:]  # (1, K)
        point, quantiles = self._original_forecasts(x, base)
        levels = point[0]  # (T, K)
        steps = np.arange(1, self.window.horizon + 1)
        out = pd.DataFrame({"step": steps})
        times = datetime_steps(
            series.frame.index, self.data.frequency, self.window.offset + steps
        )
        if times is not None:
            out["time"] = times
        for k, target in enumerate(self.targets):
            out[target] = levels[:, k]
        for k, target in enumerate(self.targets):
            for q, values in quantiles.items():
                out[f"{target}_q{q:g}"] = values[0, :, k]
        return out

    def backtest(self, frame: pd.DataFrame, since) -> Backtest:
        """Forecast every window of `frame` whose first target label is >= `since`.

        Inputs may reach back before `since` (they are the past); targets never
        do, so a cut-off after a model's training rows scores it on unseen data.
        """
        series = self._validated(frame)
        first = int(series.frame.index.searchsorted(since))
        if first >= len(series.frame):
            raise DataError(f"no rows at or after {since!r} to score forecasts on.")
        start = max(first - self.window.offset - self.history_rows, 0)
        prepared = self._prepare(series.frame.iloc[start:], self.lead)
        found = windows_since(
            self.model, prepared, self.normalizer, self.features, self.targets,
            self.window, self.data.transform, since, self.calibration,
        )  # fmt: skip
        if found is None:
            raise DataError(
                f"no whole window has its targets at or after {since!r} "
                f"(window span {self.window.span} rows)."
            )
        return found

    def save(self, directory: Path) -> Path:
        """Write `model.keras` and `forecaster.json` into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / _MODEL_FILE)
        meta = {
            "format": FORMAT_VERSION,
            "data": self.data.model_dump(mode="json"),
            "window": self.window.model_dump(mode="json"),
            "calendar_columns": self.calendar_columns,
            "normalizer": self.normalizer.to_dict(),
            **self.calibration.to_dict(),
        }
        (directory / _META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> "Forecaster":
        """Inverse of `save`; the network loads with `safe_mode=True`."""
        import keras

        import components.models.custom  # noqa: F401  (registers custom layers)

        directory = Path(directory)
        meta = json.loads((directory / _META_FILE).read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(
                f"{directory / _META_FILE}: format {meta.get('format')!r} is not "
                f"supported (expected {FORMAT_VERSION}); retrain the model."
            )
        return cls(
            model=keras.saving.load_model(directory / _MODEL_FILE, safe_mode=True),
            normalizer=preprocess.Normalizer.from_dict(meta["normalizer"]),
            data=DataSpec.model_validate(meta["data"]),
            window=WindowSpec.model_validate(meta["window"]),
            calendar_columns=meta["calendar_columns"],
            calibration=Calibration.from_dict(meta),
        )

    def _validated(self, frame: pd.DataFrame) -> ingest.LoadedSeries:
        time_column = self.data.time_column
        if (
            time_column
            and time_column not in frame.columns
            and (
                frame.index.name == time_column
                or isinstance(frame.index, pd.DatetimeIndex)
            )
        ):
            frame = frame.reset_index(names=time_column)  # already indexed by time
        return ingest.series_from_frame(frame, self.data, "model input")

    def _prepare(self, frame: pd.DataFrame, lead: int = 0) -> preprocess.PreparedSplit:
        return preprocess.prepare_split(
            frame, self.data, self.targets, keep=self.calendar_columns, lead=lead
        )

    def _original_forecasts(self, x: np.ndarray, base: np.ndarray):
        """(point (W, T, K), served quantile level -> (W, T, K)), original
        units, for windows x with last levels `base` (W, K)."""
        return original_forecasts(
            self.model, x, base, self.normalizer, self.targets,
            self.data.transform, self.calibration,
        )  # fmt: skip


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
) -> Backtest | None:
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
    return Backtest(
        index[keep], actual[keep], forecast[keep], persistence[keep],
        {q: values[keep] for q, values in quantiles.items()},
    )  # fmt: skip


def datetime_steps(index: pd.Index, frequency: str | None, ahead: np.ndarray):
    """UTC times (zone-less) `ahead` steps of `frequency` after the last of
    `index`, or None when the index is not datetime or has no frequency."""
    if not (isinstance(index, pd.DatetimeIndex) and frequency):
        return None
    step = pd.tseries.frequencies.to_offset(frequency)
    return _naive_utc(pd.DatetimeIndex([index[-1] + step * int(a) for a in ahead]))


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


def _naive_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """UTC wall time without a zone (rnnflow reads zone-less times as UTC)."""
    return index.tz_convert("UTC").tz_localize(None) if index.tz else index
