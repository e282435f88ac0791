"""Monitoring: the forecasts a deployment kept, scored against the actuals
that arrived since, beside seasonal naive on the same rows.

Pure pandas/numpy: the flow reads the forecast store and the data, this
module joins and scores them, the flow logs and decides what to start.

Every figure is per forecast row first (series, origin, step, target), then
averaged: MASE divides each series' absolute errors by that series' in-sample
seasonal naive error on its rows up to the earliest monitored origin (the
same scale a training run's `test_mase` uses, from history the forecaster
had), and a panel's MASE is the mean over series, like `test_mase`.
Seasonal naive for a row is the actual one whole number of seasons before
its target time, at or before its origin: what seasonal naive would have
said at that origin.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from components.evaluation.metrics import mase_scale

# Columns of `scored_rows`, besides one `covered_<level %>` per interval.
ROW_COLUMNS = (
    "series", "origin", "step", "time", "forecaster", "target",
    "forecast", "actual", "seasonal_naive", "scale",
)  # fmt: skip


@dataclass
class MonitorFigures:
    """What monitoring found over its window of origins."""

    rows: pd.DataFrame  # one per scored forecast (ROW_COLUMNS, covered_*)
    by_series_step: pd.DataFrame  # series, step: n, mae, mase, seasonal naive, coverage
    by_origin: pd.DataFrame  # origin: the same, over time
    by_series: pd.DataFrame  # series: the same, worst first
    metrics: dict[str, float] = field(default_factory=dict)
    levels: list[float] = field(default_factory=list)  # central interval levels


def time_values(values) -> np.ndarray:
    """Times comparable across the store and the data: datetime64[ns] (naive
    UTC) for time stamps, float64 for numbers (years, row numbers)."""
    series = pd.Series(values)
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(np.float64)
    stamps = pd.to_datetime(series, utc=True).dt.tz_localize(None)
    return stamps.to_numpy("datetime64[ns]")


def actual_rows(frame: pd.DataFrame, layout, name: str, targets: list[str]) -> dict:
    """series -> (sorted times, (n, K) actual values) from a loaded source
    (`LoadedSeries.frame` and `.layout`; one series is called `name`). Rows
    whose targets have not arrived (NaN) are left out."""
    spans = (
        {name: (0, len(frame))}
        if layout is None
        else {s: (int(layout.bounds[i]), int(layout.bounds[i + 1]))
              for i, s in enumerate(layout.ids)}
    )  # fmt: skip
    index = frame.index
    if layout is None and not _is_time(index):
        index = pd.RangeIndex(len(frame))  # no time column: the row number
    out = {}
    for series, (a, b) in spans.items():
        values = frame[targets].iloc[a:b].to_numpy(np.float64)
        times = time_values(index[a:b])
        arrived = ~np.isnan(values).any(axis=1)
        order = np.argsort(times[arrived], kind="stable")
        out[str(series)] = (times[arrived][order], values[arrived][order])
    return out


def _is_time(index: pd.Index) -> bool:
    return isinstance(index, pd.DatetimeIndex) or (
        pd.api.types.is_numeric_dtype(index) and not isinstance(index, pd.RangeIndex)
    )


def interval_levels(columns, target: str) -> dict[float, tuple[str, str]]:
    """Central interval level -> (lower, upper) quantile columns of `target`
    (`y_q0.1` and `y_q0.9` make the 80 % interval)."""
    prefix = f"{target}_q"
    quantiles = {}
    for column in columns:
        if column.startswith(prefix):
            try:
                quantiles[float(column[len(prefix) :])] = column
            except ValueError:
                continue
    levels = {}
    for q, lower in quantiles.items():
        upper = quantiles.get(round(1 - q, 10))
        if q < 0.5 and upper is not None:
            levels[round(1 - 2 * q, 10)] = (lower, upper)
    return dict(sorted(levels.items()))


def origin_key(label: str):
    """A stored origin label as something that sorts in time order."""
    try:
        return (0, float(label))
    except ValueError:
        return (1, pd.Timestamp(label).value)


def by_serving_model(kept: pd.DataFrame) -> tuple[pd.DataFrame, str, int]:
    """The kept rows made by the model behind the newest origin's forecasts
    (the one serving now: a model promoted since is judged on its own
    forecasts, not on its predecessor's), its URI@version, and how many rows
    other models made."""
    if "model_uri" not in kept or kept.empty:
        return kept, "", 0
    newest = max(kept["origin"].unique(), key=origin_key)
    model = kept.loc[kept["origin"] == newest, ["model_uri", "model_version"]].iloc[0]
    same = (kept["model_uri"] == model["model_uri"]) & (
        kept["model_version"].astype(str) == str(model["model_version"])
    )
    version = f" version {model['model_version']}" if model["model_version"] else ""
    return kept[same], f"{model['model_uri']}{version}", int((~same).sum())


def scored_rows(
    forecasts: pd.DataFrame,
    actuals: dict,
    targets: list[str],
    season: int | None,
    window: int,
) -> pd.DataFrame:
    """Every stored forecast of the last `window` origins that has an actual,
    scored (ROW_COLUMNS, `covered_<level %>` per central interval: 1.0, 0.0,
    or NaN where the row has no interval)."""
    if forecasts.empty:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    some = next(iter(actuals.values()), (np.array([], np.float64), None))[0]
    numeric = some.dtype.kind == "f"
    origin_of = {
        label: float(label) if numeric else np.datetime64(pd.Timestamp(label), "ns")
        for label in forecasts["origin"].unique()
    }
    forecasts = forecasts.assign(
        time_value=time_values(forecasts["time"]),
        origin_value=forecasts["origin"].map(origin_of).to_numpy(),
    )
    lag = season or 1
    parts = []
    for series, part in forecasts.groupby("series", sort=False):
        found = actuals.get(str(series))
        if found is None or not len(found[0]):
            continue
        times, values = found
        pos_t = np.searchsorted(times, part["time_value"].to_numpy())
        inside = pos_t < len(times)
        arrived = np.zeros(len(part), bool)
        arrived[inside] = times[pos_t[inside]] == part["time_value"].to_numpy()[inside]
        pos_o = np.searchsorted(times, part["origin_value"].to_numpy(), side="right") - 1
        ahead = pos_t - pos_o
        back = pos_t - lag * np.ceil(ahead / lag).astype(int)
        keep = arrived & (pos_o >= 0) & (ahead >= 1)
        if not keep.any():
            continue
        part, pos_t, back = part[keep], pos_t[keep], back[keep]
        first = int(pos_o[keep].min())
        scale = mase_scale(values[: first + 1], season) if first >= lag else None
        for k, target in enumerate(targets):
            naive = np.where(back >= 0, values[np.maximum(back, 0), k], np.nan)
            rows = pd.DataFrame({
                "series": str(series), "origin": part["origin"].to_numpy(),
                "origin_value": part["origin_value"].to_numpy(),
                "step": part["step"].to_numpy(), "time": part["time"].to_numpy(),
                "forecaster": part["forecaster"].to_numpy(), "target": target,
                "forecast": part[target].to_numpy(np.float64),
                "actual": values[pos_t, k], "seasonal_naive": naive,
                "scale": np.nan if scale is None else scale[k],
            })  # fmt: skip
            for level, (lower, upper) in interval_levels(part.columns, target).items():
                low = part[lower].to_numpy(np.float64)
                high = part[upper].to_numpy(np.float64)
                covered = (low <= rows["actual"]) & (rows["actual"] <= high)
                rows[f"covered_{level * 100:g}"] = np.where(
                    np.isnan(low) | np.isnan(high), np.nan, covered.astype(float)
                )
            parts.append(rows)
    if not parts:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    rows = pd.concat(parts, ignore_index=True)
    recent = np.sort(rows["origin_value"].unique())[-window:]
    rows = rows[rows["origin_value"].isin(recent)]
    return rows.sort_values(["origin_value", "series", "step", "target"]).reset_index(
        drop=True
    )


def _errors(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-row absolute errors, raw and scaled, of the model and seasonal naive."""
    error = (rows["forecast"] - rows["actual"]).abs()
    naive = (rows["seasonal_naive"] - rows["actual"]).abs()
    return pd.DataFrame({
        "series": rows["series"], "abs_error": error,
        "scaled_error": error / rows["scale"], "naive_abs_error": naive,
        "naive_scaled_error": naive / rows["scale"],
    }, index=rows.index)  # fmt: skip


def _summary(rows: pd.DataFrame, coverage: list[str]) -> pd.Series:
    """The figures of one group of rows: MASE as the mean over its series of
    each series' mean scaled error (as `test_mase` averages a panel)."""
    errors = _errors(rows)
    per_series = errors.groupby("series")[["scaled_error", "naive_scaled_error"]].mean()
    out = {
        "n": float(len(rows)),
        "n_series": float(rows["series"].nunique()),
        "mae": errors["abs_error"].mean(),
        "mase": per_series["scaled_error"].mean(),
        "seasonal_naive_mae": errors["naive_abs_error"].mean(),
        "seasonal_naive_mase": per_series["naive_scaled_error"].mean(),
    }
    for column in coverage:
        out[column.replace("covered", "coverage")] = rows[column].mean()
    return pd.Series(out)


def summarize(rows: pd.DataFrame) -> MonitorFigures:
    """Overall figures, and the same per series and step, per origin and
    per series (worst MASE first)."""
    coverage = [c for c in rows.columns if c.startswith("covered_")]
    levels = [float(c.removeprefix("covered_")) / 100 for c in coverage]

    def by(keys):
        if rows.empty:
            return pd.DataFrame(columns=[*keys, "n", "mae", "mase"])
        records = [
            dict(zip(keys, key if isinstance(key, tuple) else (key,)))
            | dict(_summary(group, coverage))
            for key, group in rows.groupby(keys, sort=True)
        ]
        return pd.DataFrame.from_records(records)

    overall = _summary(rows, coverage) if len(rows) else pd.Series(dtype=float)
    metrics = {
        "monitor_rows": float(len(rows)),
        "monitor_series": float(rows["series"].nunique()),
        "monitor_origins": float(rows["origin"].nunique()),
    }
    if len(rows):
        metrics.update({f"monitor_{k}": float(v) for k, v in overall.items()
                        if k not in ("n", "n_series")})  # fmt: skip
        skill = 1 - overall["mase"] / overall["seasonal_naive_mase"]
        metrics["monitor_skill_vs_seasonal_naive"] = float(skill)
    by_origin = by(["origin_value", "origin"]).drop(columns="origin_value", errors="ignore")
    by_series = by(["series"])
    if len(by_series):
        by_series = by_series.sort_values("mase", ascending=False, na_position="last")
    return MonitorFigures(
        rows=rows.drop(columns="origin_value"),
        by_series_step=by(["series", "step"]),
        by_origin=by_origin,
        by_series=by_series.reset_index(drop=True),
        metrics=metrics,
        levels=levels,
    )


@dataclass
class Decision:
    """Whether monitoring asks for a retrain, and why (every reason)."""

    retrain: bool
    reasons: list[str]
    degradation: float | None = None
    coverage_error: float | None = None


def decide(
    figures: MonitorFigures,
    reference_mase: float | None,
    max_degradation: float | None,
    max_coverage_error: float | None,
    min_rows: int,
) -> Decision:
    """Compare the window's figures with the champion's holdout MASE
    (`reference_mase`; without one, with seasonal naive on the same rows) and
    each interval's nominal level."""
    metrics = figures.metrics
    scored = int(metrics.get("monitor_rows", 0))
    if scored < min_rows:
        return Decision(False, [
            f"{scored} scored forecast(s), fewer than `monitor.min_rows` "
            f"({min_rows}): not enough actuals yet to judge"
        ])  # fmt: skip
    reasons, ok = [], []
    mase = metrics.get("monitor_mase", float("nan"))
    against, level = "the champion's holdout MASE", reference_mase
    if level is None or not np.isfinite(level) or level <= 0:
        against, level = "seasonal naive's MASE on the same rows", metrics.get(
            "monitor_seasonal_naive_mase"
        )
    degradation = None
    if level is not None and np.isfinite(level) and level > 0 and np.isfinite(mase):
        degradation = mase / level - 1
        said = (f"MASE {mase:.3f} over {int(metrics['monitor_origins'])} origin(s) is "
                f"{degradation:+.0%} against {against} {level:.3f}")  # fmt: skip
        if max_degradation is not None and degradation > max_degradation:
            reasons.append(f"{said} (`monitor.max_degradation` {max_degradation:g})")
        else:
            ok.append(said)
    coverage_error = None
    for level_ in figures.levels:
        key = f"monitor_coverage_{level_ * 100:g}"
        found = metrics.get(key)
        if found is None or not np.isfinite(found):
            continue
        miss = abs(found - level_)
        coverage_error = max(coverage_error or 0.0, miss)
        said = f"the {level_:.0%} interval covered {found:.0%}"
        if max_coverage_error is not None and miss > max_coverage_error:
            reasons.append(f"{said} (`monitor.max_coverage_error` {max_coverage_error:g})")
        else:
            ok.append(said)
    return Decision(bool(reasons), reasons or ok, degradation, coverage_error)
