"""A trained panel model, servable: a long frame of many series in, a long
frame of forecasts out (series, step, time, one column per target, and the
quantile columns of the calibrated intervals).

It runs the caller's rows through the same path as training: the same
validation and static encoding (`ingest.series_from_frame`), each series'
cleaning and transform (`preprocess.prepare_split`), that series' training
statistics, and the same re-integration (`evaluation.to_original`).
Series the model never saw are refused by name: it has no statistics for
them. Saved by `Forecaster.save` with `"type": "panel"`.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.data import ingest, preprocess
from components.data.panel import PanelLayout, series_keys
from components.evaluation.holdout import Holdout
from components.evaluation.intervals import Calibration
from components.serving.forecaster import Forecaster
from components.serving.rows import (
    datetime_steps,
    lead_known,
    original_forecasts,
    split_future,
    windows_since,
)

EXAMPLE_SERIES = 3  # series in the logged input example


@dataclass(frozen=True, kw_only=True)
class PanelForecaster(Forecaster):
    """`model` plus each series' statistics and what shapes its inputs.

    Attributes:
        normalizer: every training series' statistics
            (`preprocess.SeriesNormalizer`).
        static_columns: the static input channels training built (`region=a`).
        series_scale: (S, K) each series' scale: the units of the
            calibration's radii and shifts, and of `holdout`.
    """

    TYPE = "panel"
    HOLDOUT_UNIT = "scaled"

    static_columns: list[str]
    series_scale: np.ndarray

    @classmethod
    def from_training(
        cls, model, normalizer, config, series: ingest.LoadedSeries, report,
        calibration=None,
    ) -> "PanelForecaster":
        """Package a panel training run: its settings, statistics and the
        series scales of its evaluation (`report.series_scale`)."""
        shared = set(series.shared_columns)
        own = [f for f in series.features if f not in shared]
        wide = config.data.layout == "panel"
        data = config.data.model_copy(
            update={"path": series.source, "sha256": None,
                    "features": None if wide else own,
                    "targets": config.data.targets if wide else list(series.targets),
                    "frequency": config.data.frequency or series.frequency}
        )  # fmt: skip
        return cls(
            model=model, normalizer=normalizer, data=data, window=config.window,
            calendar_columns=list(series.calendar_columns),
            static_columns=list(series.static_columns),
            series_scale=np.asarray(report.series_scale),
            calibration=calibration or Calibration(),
        )  # fmt: skip

    def example_rows(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The input example: the last `history_rows` rows of a few series
        of `raw` (a frame shaped like the training source)."""
        if self.data.layout == "panel":  # wide: one column per series
            return raw.iloc[-self.history_rows :].reset_index(drop=True)
        ids, lead = self.data.id_columns, self.lead
        ordered = raw.sort_values([*ids, self.data.time_column], kind="stable")
        tails = ordered.groupby(ids, sort=True).tail(self.history_rows + lead)
        keep = tails[ids].drop_duplicates().head(EXAMPLE_SERIES)
        tails = tails.merge(keep, on=ids).reset_index(drop=True)
        if lead:  # each series' last `lead` rows become its rows ahead
            ahead = tails.groupby(ids).cumcount(ascending=False) < lead
            tails.loc[ahead.to_numpy(), list(self.data.targets)] = np.nan
        return tails

    def _split_future(self, frame: pd.DataFrame):
        """Each series' rows ahead (targets empty, known columns planned):
        (the history, series key -> its rows ahead)."""
        if not self.lead:
            return frame, {}
        ids = self.data.id_columns
        frame = frame.sort_values([*ids, self.data.time_column], kind="stable")
        key = series_keys(frame, ids)
        history, ahead = [], {}
        for series, rows in frame.groupby(key.to_numpy(), sort=False):
            past, future = split_future(
                rows, self.data, self.lead, f"model input, series {series!r}"
            )
            history.append(past)
            ahead[series] = future
        return pd.concat(history), ahead

    def request_frame(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """`raw` (shaped like the source) without the series this model was
        not trained on (too short then, or new), and their keys."""
        known = set(self.normalizer.series)
        if self.data.layout == "panel":  # wide: a series is a column
            time = self.data.time_column
            stray = [c for c in raw.columns if c != time and str(c) not in known]
            return raw.drop(columns=stray), list(map(str, stray))
        key = series_keys(raw, self.data.id_columns)
        stray = sorted(set(key) - known)
        return raw[key.isin(known).to_numpy()], stray

    def forecast(self, frame: pd.DataFrame, skip_short: bool = False) -> pd.DataFrame:
        """The next `horizon` steps after the last row of every series in
        `frame` (raw rows shaped like the training source, at least
        `history_rows` per series).

        Returns:
            one row per series and step: the series key (`series`), `step`,
            `time` (when it can be stepped), each target, then each
            target's quantile columns (`{target}_q0.1`, ...). With
            `skip_short`, a series without `input_width` usable rows is left
            out (listed in `attrs["skipped"]`) instead of refused.
        """
        frame, ahead = self._split_future(frame)
        loaded = self._validated(frame)
        rows = self._series_rows(loaded)
        features = self._input_columns(loaded)
        embeds = self._embeds_series
        inputs, bases, skipped = [], [], []
        for j, (a, b) in list(rows.items()):
            tail = loaded.frame.iloc[max(a, b - self.history_rows) : b]
            part = preprocess.prepare_split(
                tail, self.data, loaded.targets, keep=loaded.shared_columns
            )
            if len(part.frame) < self.window.input_width and skip_short:
                rows.pop(j)
                skipped.append(self.normalizer.series[j])
                continue
            if len(part.frame) < self.window.input_width:
                raise DataError(
                    f"model input: series {self.normalizer.series[j]!r} needs its "
                    f"last {self.history_rows} rows without gaps, got "
                    f"{len(part.frame)} usable rows."
                )
            series_key = self.normalizer.series[j]
            led = lead_known(part.frame, ahead.get(series_key), self.data.known, self.lead)
            scaled = self.normalizer.of_series(j).transform(
                led.iloc[-self.window.input_width :], features
            )
            if embeds:
                scaled = preprocess.with_series_index(scaled, [len(scaled)], j)
            inputs.append(scaled)
            bases.append(part.levels.to_numpy(np.float64)[-1])
        if not rows:
            raise DataError(
                f"model input: no series has its last {self.history_rows} rows "
                "without gaps."
            )
        index = np.fromiter(rows, np.int64)
        levels, quantiles = original_forecasts(
            self.model, np.stack(inputs), np.stack(bases),
            self.normalizer.for_windows(index), loaded.targets, self.data.transform,
            self.calibration, self.series_scale[index],
        )  # (S_in, T, K) each  # fmt: skip
        out = self._long(loaded, rows, levels, quantiles)
        out.attrs["skipped"] = skipped
        return out

    def holdout(
        self, frame: pd.DataFrame, since, scale: dict | None = None, only=None
    ) -> Holdout:
        """Forecast every window of every series whose first target is at
        or after `since` (inputs may reach back before it), for the retrain
        gate.

        Args:
            scale: series -> (K,) scale dividing actual and forecasts (default
                this model's own), so that two models are judged in the same
                units and every series counts alike.
            only: the series to score (default every series in `frame`).

        Returns:
            a `Holdout` whose index labels each window `series@time` and
            whose values are in units of `scale`.
        """
        loaded = self._validated(frame)
        if only is not None:
            loaded = _only(loaded, set(only))
        rows = self._series_rows(loaded)
        embeds = self._embeds_series
        labels, parts = [], {"actual": [], "forecast": [], "persistence": []}
        quantiles = {}
        for j, (a, b) in rows.items():
            series = self.normalizer.series[j]
            times = loaded.frame.index[a:b]
            first = int(times.searchsorted(since))
            if b - a - first < self.window.offset + self.window.horizon:
                continue
            start = a + max(first - self.window.offset - self.history_rows, 0)
            part = preprocess.prepare_split(
                loaded.frame.iloc[start:b], self.data, loaded.targets,
                keep=loaded.shared_columns, lead=self.lead,
            )  # fmt: skip
            found = windows_since(
                self.model, part, self.normalizer.of_series(j),
                self._input_columns(loaded), loaded.targets, self.window,
                self.data.transform, since, self.calibration, self.series_scale[j],
                j if embeds else None,
            )  # fmt: skip
            if found is None:
                continue
            unit = np.asarray(
                (scale or {}).get(series, self.series_scale[j]), np.float64
            )
            for name in parts:
                parts[name].append(getattr(found, name) / unit)
            for q, values in found.quantiles.items():
                quantiles.setdefault(q, []).append(values / unit)
            labels += [f"{series}@{t}" for t in found.index]
        if not labels:
            raise DataError(
                f"no series has a whole window with its targets at or after {since!r}."
            )
        return Holdout(
            pd.Index(labels), *(np.concatenate(parts[n]) for n in parts),
            {q: np.concatenate(values) for q, values in quantiles.items()},
        )  # fmt: skip

    @property
    def _embeds_series(self) -> bool:
        """The network reads each series' training index (`model.id_embedding`)."""
        from components.models.series_id import takes_series_index

        return takes_series_index(self.model)

    def scale_of(self) -> dict:
        """series -> (K,) its scale: the units `holdout` divides by."""
        return dict(zip(self.normalizer.series, self.series_scale))

    @property
    def series_names(self) -> tuple[str, ...]:
        return tuple(self.normalizer.series)

    def _long(self, loaded, rows, levels, quantiles) -> pd.DataFrame:
        steps = np.arange(1, self.window.horizon + 1)
        out = pd.DataFrame(
            {
                "series": np.repeat([self.normalizer.series[j] for j in rows], len(steps)),
                "step": np.tile(steps, len(rows)),
            }
        )
        times = [self._times(loaded.frame.index[a:b], steps) for a, b in rows.values()]
        if all(t is not None for t in times):
            out["time"] = np.concatenate(times)
        flat = levels.reshape(-1, levels.shape[2])
        for k, target in enumerate(loaded.targets):
            out[target] = flat[:, k]
        for k, target in enumerate(loaded.targets):
            for q, values in quantiles.items():  # (S_in, T, K) -> (S_in * T,)
                out[f"{target}_q{q:g}"] = values[:, :, k].ravel()
        return out

    def _times(self, index: pd.Index, steps: np.ndarray):
        """The time of each step after the series' last row, or None when it
        cannot be stepped (no frequency, a single row)."""
        ahead = self.window.offset + steps
        if pd.api.types.is_numeric_dtype(index) and len(index) > 1:  # e.g. years
            return index[-1] + ahead * (index[-1] - index[-2])
        stamps = datetime_steps(index, self.data.frequency, ahead)
        return None if stamps is None else stamps.to_numpy()

    def _validated(self, frame: pd.DataFrame) -> ingest.LoadedSeries:
        loaded = ingest.series_from_frame(frame, self.data, "model input")
        unseen = sorted(set(loaded.static_columns) - set(self.static_columns))
        if unseen:
            raise DataError(
                f"model input: static value(s) {unseen} were not in the training "
                f"data (it knew {self.static_columns})."
            )
        missing = [c for c in self.static_columns if c not in loaded.frame.columns]
        if missing:  # a category none of these series has: its one-hot is 0
            extra = pd.DataFrame(0.0, index=loaded.frame.index, columns=missing)
            frame = pd.concat([loaded.frame, extra], axis=1)
            loaded = replace(loaded, frame=frame)
        return loaded

    def _series_rows(self, loaded) -> dict[int, tuple[int, int]]:
        """Training index of each input series -> its rows in `loaded`."""
        known = {s: j for j, s in enumerate(self.normalizer.series)}
        unknown = [s for s in loaded.layout.ids if s not in known]
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise DataError(
                f"model input: series {unknown[:5]}{more} were not trained on "
                "(the model has no statistics for them); retrain with them."
            )
        bounds = loaded.layout.bounds
        return {
            known[s]: (int(bounds[i]), int(bounds[i + 1]))
            for i, s in enumerate(loaded.layout.ids)
        }

    def _input_columns(self, loaded) -> list[str]:
        """The network's input columns in training's order: the series' own
        features, then the static and calendar channels training built."""
        shared = set(loaded.shared_columns)
        own = [f for f in loaded.features if f not in shared]
        return [*own, *self.static_columns, *self.calendar_columns]

    def _meta(self) -> dict:
        return {
            "static_columns": self.static_columns,
            "series_scale": self.series_scale.tolist(),
        }

    @classmethod
    def _from_meta(cls, model, meta: dict) -> "PanelForecaster":
        return cls(
            model=model, static_columns=meta["static_columns"],
            series_scale=np.asarray(meta["series_scale"]), **cls._common(meta),
        )  # fmt: skip


def _only(loaded: ingest.LoadedSeries, keep: set) -> ingest.LoadedSeries:
    """`loaded` with only the series in `keep`."""

    layout = loaded.layout
    chosen = [j for j, s in enumerate(layout.ids) if s in keep]
    rows = np.concatenate(
        [np.arange(layout.bounds[j], layout.bounds[j + 1]) for j in chosen]
        or [np.zeros(0, np.int64)]
    )
    lengths = [layout.bounds[j + 1] - layout.bounds[j] for j in chosen]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return replace(
        loaded, frame=loaded.frame.iloc[rows],
        layout=PanelLayout(tuple(layout.ids[j] for j in chosen), bounds),
    )  # fmt: skip

