"""One series' forecaster: the train-split normalizer, the window, the data
settings and the column names around a trained network.

Serving and training share one code path: raw rows go through the same
validation (`ingest.series_from_frame`), the same per-split cleaning and
transform (`preprocess.prepare_split`) and the same re-integration
(`evaluation.to_original`) as the training run's own test forecasts.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.data import ingest, preprocess
from components.evaluation.holdout import Holdout
from components.evaluation.intervals import Calibration
from components.serving.forecaster import Forecaster
from components.serving.rows import (
    datetime_steps,
    lead_known,
    naive_utc,
    original_forecasts,
    split_future,
    windows_since,
    with_future_rows,
)


@dataclass(frozen=True, kw_only=True)
class SeriesForecaster(Forecaster):
    """A forecaster of the one series it was trained on (`normalizer`: a
    `preprocess.Normalizer`)."""

    TYPE = "series"
    HOLDOUT_UNIT = "raw"

    @classmethod
    def from_training(
        cls, model, normalizer, config, series: ingest.LoadedSeries, report=None,
        calibration=None,
    ) -> "SeriesForecaster":
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
            model=model, normalizer=normalizer, data=data, window=config.window,
            calendar_columns=list(series.calendar_columns),
            calibration=calibration or Calibration(),
        )  # fmt: skip

    @property
    def features(self) -> list[str]:
        """The model's input columns: raw features, then calendar features
        (the order `ingest` builds them in)."""
        return [*self.data.features, *self.calendar_columns]

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
            out = out.set_axis(naive_utc(out.index))
        return out.reset_index(names=self.data.time_column)

    def request_frame(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """`raw` validated and cut to the columns a forecast reads."""
        return self.input_frame(self._validated(raw).frame), []

    def example_rows(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The logged input example: the last `history_rows` rows, and with
        known columns the `lead` rows after them, their targets emptied."""
        return with_future_rows(
            raw.iloc[-(self.history_rows + self.lead) :], self.targets, self.lead
        )

    def forecast(self, frame: pd.DataFrame, skip_short: bool = True) -> pd.DataFrame:
        """The next `horizon` steps after the last row of `frame`.

        Args:
            frame: raw observations in time order, at least `history_rows` rows,
                with the input columns (and the time column when trained with one).
            skip_short: unused (one series is forecast or refused).

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
        point, quantiles = original_forecasts(
            self.model, x, base, self.normalizer, self.targets,
            self.data.transform, self.calibration,
        )  # fmt: skip
        steps = np.arange(1, self.window.horizon + 1)
        out = pd.DataFrame({"step": steps})
        times = datetime_steps(
            series.frame.index, self.data.frequency, self.window.offset + steps
        )
        if times is not None:
            out["time"] = times
        for k, target in enumerate(self.targets):
            out[target] = point[0][:, k]
        for k, target in enumerate(self.targets):
            for q, values in quantiles.items():
                out[f"{target}_q{q:g}"] = values[0, :, k]
        return out

    def holdout(
        self, frame: pd.DataFrame, since, scale: dict | None = None, only=None
    ) -> Holdout:
        """Forecast every window of `frame` whose first target label is >=
        `since`, in original units (`scale` and `only` concern panels).

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

    def _meta(self) -> dict:
        return {}

    @classmethod
    def _from_meta(cls, model, meta: dict) -> "SeriesForecaster":
        return cls(model=model, **cls._common(meta))

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
