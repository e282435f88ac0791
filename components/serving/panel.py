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
from components.evaluation.metrics import mase_scale
from components.serving.forecaster import Forecaster
from components.serving.rows import (
    datetime_steps,
    lead_known,
    original_forecasts,
    split_future,
    windows_since,
)

EXAMPLE_SERIES = 3  # series in the logged input example


def made_by(combine) -> str:
    """The `forecaster` label of the network's rows: `network`, or under
    `model.combine` the models averaged (`network+theta`)."""
    return "+".join(["network", *combine])


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
    # The run's `evaluate.season`: what the seasonal-naive fallback repeats.
    season: int | None = None
    # `model.combine`: classical models fitted on each series' rows, averaged
    # with the network's forecast.
    combine: tuple[str, ...] = ()

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
            season=config.evaluate.season,
            combine=() if config.model.combine == "auto" else tuple(config.model.combine),
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
        """`raw` (shaped like the source) as it is: every series gets a
        forecast (the network's, or a named fallback), so none is left out."""
        return raw, []

    def forecast(self, frame: pd.DataFrame, skip_short: bool = True) -> pd.DataFrame:
        """The next `horizon` steps after the last row of every series in
        `frame` (raw rows shaped like the training source).

        Every series gets a forecast: the network's for a series whose last
        `input_width` rows are usable (scaled by its training statistics, or,
        for a series it was not trained on, by its own rows'; trained with
        `data.short_series: pad`, a shorter series is padded as training
        padded it, down to `offset + horizon + 1` rows); otherwise a
        named fallback (seasonal naive with the run's `evaluate.season` when
        the series holds a season, else naive), without quantiles.

        Returns:
            one row per series and step: the series key (`series`), `step`,
            `time` (when it can be stepped), `forecaster` (who made the row:
            `network`, `seasonal_naive` or `naive`), each target, then each
            target's quantile columns (`{target}_q0.1`, ...; empty for a
            fallback). `attrs["forecasters"]`: the series of each forecaster;
            `attrs["own_statistics"]`: those the network forecast with their
            own rows' statistics.
            With `skip_short=False` a series the network cannot forecast is
            refused instead (a DataError naming it).
        """
        frame, ahead = self._split_future(frame)
        loaded = self._validated(frame)
        known = {s: j for j, s in enumerate(self.normalizer.series)}
        features = self._input_columns(loaded)
        bounds = loaded.layout.bounds
        network, fallback, own = {}, {}, []
        inputs, bases, stats = [], [], []
        embeds = self._embeds_series
        for i, series in enumerate(loaded.layout.ids):
            a, b = int(bounds[i]), int(bounds[i + 1])
            tail = loaded.frame.iloc[max(a, b - self.history_rows) : b]
            part = preprocess.prepare_split(
                tail, self.data, loaded.targets, keep=loaded.shared_columns
            )
            j = known.get(series)
            usable = len(part.frame) >= self._least_rows
            if not usable or (j is None and embeds):
                if not skip_short:
                    why = "was not trained on" if j is None else (
                        f"needs {self._least_rows} of its last {self.history_rows} "
                        f"rows without gaps, got {len(part.frame)} usable rows"
                    )  # fmt: skip
                    raise DataError(f"model input: series {series!r} {why}.")
                fallback[series] = (a, b)
                continue
            found = self._own_statistics(loaded, a, b) if j is None else (
                self.normalizer.of_series(j), self.series_scale[j]
            )  # fmt: skip
            if j is None:
                own.append(series)
            led = lead_known(part.frame, ahead.get(series), self.data.known, self.lead)
            scaled = found[0].transform(_padded(led, self.window.input_width), features)
            if embeds:
                scaled = preprocess.with_series_index(scaled, [len(scaled)], j)
            inputs.append(scaled)
            bases.append(part.levels.to_numpy(np.float64)[-1])
            stats.append(found)
            network[series] = (a, b)
        parts = []
        if network:
            means = np.stack([np.asarray(n.mean, np.float64) for n, _ in stats])
            stds = np.stack([np.asarray(n.std, np.float64) for n, _ in stats])
            per_window = preprocess.Normalizer(
                self.normalizer.columns, means[:, None, :], stds[:, None, :]
            )  # (S_in, 1, n): broadcasts over (S_in, T, K)
            levels, quantiles = original_forecasts(
                self.model, np.stack(inputs), np.stack(bases), per_window,
                loaded.targets, self.data.transform, self.calibration,
                np.stack([scale for _, scale in stats]),
            )  # (S_in, T, K) each  # fmt: skip
            if self.combine:
                levels, quantiles = self._combined(loaded, network, levels, quantiles)
            who = made_by(self.combine)
            parts.append(self._long(loaded, network, levels, quantiles, who))
        for name, (a, b) in fallback.items():
            who, values = self._fallback(loaded.frame.iloc[a:b], loaded.targets)
            parts.append(self._long(loaded, {name: (a, b)}, values[None], {}, who))
        out = pd.concat(parts, ignore_index=True)
        out.attrs["forecasters"] = {
            who: sorted(set(out.loc[out["forecaster"] == who, "series"]))
            for who in out["forecaster"].unique()
        }
        out.attrs["own_statistics"] = sorted(own)
        return out

    def _combined(self, loaded, network: dict, levels: np.ndarray, quantiles: dict):
        """`model.combine`: each network forecast averaged with the classical
        models fitted on the series' rows (each target on its own); the
        quantiles move with it."""
        combined = levels.copy()
        for i, (a, b) in enumerate(network.values()):
            for k, target in enumerate(loaded.targets):
                y = loaded.frame[target].iloc[a:b].dropna().to_numpy(np.float64)
                combined[i, :, k] = self._classical_mean(
                    levels[i : i + 1, :, k], y, y, np.array([len(y) - 1])
                )[0]
        shift = combined - levels  # quantiles: level -> (S_in, T, K)
        return combined, {level: value + shift for level, value in quantiles.items()}

    def _combined_since(self, loaded, a: int, b: int, found: Holdout, since) -> Holdout:
        """`found` (one series' holdout windows, original units) under
        `model.combine`: each window's network forecast averaged with the
        named models fitted on the series' rows before `since` and run on from
        each window's origin, as the test split scores the combination; the
        quantiles move with it. A window whose first target is not among the
        series' observed rows keeps the network's forecast."""
        offset = self.window.offset
        mean = found.forecast.copy()
        for k, target in enumerate(loaded.targets):
            y = loaded.frame[target].iloc[a:b].dropna()
            history = y.to_numpy(np.float64)
            first = y.index.get_indexer(found.index)  # each window's first target
            usable = first > offset
            fitted_on = history[: int(y.index.searchsorted(since))]
            if usable.any() and len(fitted_on) >= 2:
                mean[usable, :, k] = self._classical_mean(
                    found.forecast[usable, :, k], fitted_on, history,
                    first[usable] - offset - 1,
                )  # fmt: skip
        shift = mean - found.forecast
        return replace(
            found, forecast=mean,
            quantiles={q: values + shift for q, values in found.quantiles.items()},
        )  # fmt: skip

    def _classical_mean(self, network, fitted_on, history, origins) -> np.ndarray:
        """(W, T): the network's forecasts (W, T) of one target averaged with
        each `model.combine` model fitted on `fitted_on` and run on `history`
        from each origin row."""
        from components.evaluation import per_series

        horizon, offset = self.window.horizon, self.window.offset
        made = [network]
        for name in self.combine:
            fit = per_series.fit_series(name, fitted_on, self.season)
            made.append(per_series.forecast_series(fit, history, origins, horizon, offset))
        return np.mean(made, axis=0)

    @property
    def _least_rows(self) -> int:
        """Rows the network needs to forecast a series: a whole input, or,
        trained with `data.short_series: pad`, what a padded training window
        needed (its first row is repeated in front, as in training)."""
        if self.data.short_series != "pad":
            return self.window.input_width
        window = self.window
        return min(window.input_width, window.offset + window.horizon + 1)

    def _own_statistics(self, loaded, a: int, b: int):
        """(a `Normalizer`, (K,) scale) for a series the network was not
        trained on (too short for a training window then, or new), from its
        own rows as training would have fitted them: its own columns by its
        rows, the shared (calendar, static) ones by the panel's; where its
        rows are constant, the median training series' spread and scale."""
        part = preprocess.prepare_split(
            loaded.frame.iloc[a:b], self.data, loaded.targets,
            keep=loaded.shared_columns,
        )  # fmt: skip
        columns = list(self.normalizer.columns)
        mean = np.asarray(self.normalizer.mean, np.float64)[0].copy()
        std = np.median(np.asarray(self.normalizer.std, np.float64), axis=0)
        own = [c for c in columns if c not in set(loaded.shared_columns)]
        values = part.frame[own].to_numpy(np.float64)
        spread = values.std(axis=0)
        idx = [columns.index(c) for c in own]
        mean[idx] = values.mean(axis=0)
        std[idx] = np.where(spread > 0, spread, std[idx])
        scale = mase_scale(part.levels.to_numpy(np.float64), self.season)
        typical = np.median(self.series_scale, axis=0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, typical)
        return preprocess.Normalizer(tuple(columns), mean, std), scale

    def _fallback(self, rows: pd.DataFrame, targets: list[str]):
        """(its name, (T, K) forecasts) of a series the network cannot
        forecast: the last season repeated when the series holds one, else
        the last value."""
        values = rows[targets].dropna().to_numpy(np.float64)
        ahead = self.window.offset + np.arange(self.window.horizon)  # (T,)
        if not len(values):
            return "naive", np.full((len(ahead), len(targets)), np.nan)
        season = self.season
        if season and len(values) >= season:
            return "seasonal_naive", values[len(values) - season + ahead % season]
        return "naive", np.repeat(values[-1:], len(ahead), axis=0)

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
            if self.combine:  # judged as served
                found = self._combined_since(loaded, a, b, found, since)
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

    def _long(self, loaded, spans, levels, quantiles, who) -> pd.DataFrame:
        """Long rows for the series in `spans` (name -> its rows in `loaded`)
        from (S, T, K) `levels` and quantiles, made by `who`."""
        steps = np.arange(1, self.window.horizon + 1)
        out = pd.DataFrame(
            {
                "series": np.repeat(list(spans), len(steps)),
                "step": np.tile(steps, len(spans)),
            }
        )
        times = [self._times(loaded.frame.index[a:b], steps) for a, b in spans.values()]
        if all(t is not None for t in times):
            out["time"] = np.concatenate(times)
        out["forecaster"] = who
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
            "season": self.season,
            "combine": list(self.combine),
        }

    @classmethod
    def _from_meta(cls, model, meta: dict) -> "PanelForecaster":
        return cls(
            model=model, static_columns=meta["static_columns"],
            series_scale=np.asarray(meta["series_scale"]), season=meta.get("season"),
            combine=tuple(meta.get("combine", ())), **cls._common(meta),
        )  # fmt: skip


def _padded(rows: pd.DataFrame, width: int) -> pd.DataFrame:
    """The last `width` rows, the first one repeated in front where there
    are fewer (as `data.short_series: pad` pads a training window)."""
    rows = rows.iloc[-width:]
    if len(rows) >= width:
        return rows
    return pd.concat([rows.iloc[[0] * (width - len(rows))], rows])


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

