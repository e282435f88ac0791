"""Metrics in normalized and original units, and the baselines every model must beat.

All arrays here are windows in the one shape: (W, T, K) = (windows, horizon,
targets). Baselines are scored with the same function as the networks.
"""

from dataclasses import dataclass

import numpy as np

from components.common.errors import TrainingError
from components.config.schema import WindowSpec
from components.data.panel import time_keys
from components.data.preprocess import Normalizer, ScaledSplit
from components.data.windowing import (
    make_windows,
    target_rows,
    window_series,
    window_starts,
)
from components.evaluation import panel_metrics
from components.evaluation.classical import MODELS as CLASSICAL_MODELS
from components.evaluation.classical import forecast_windows as classical_forecast
from components.evaluation.metrics import mase_scale, regression_metrics, scale_free
from components.evaluation.per_series import PanelPart, forecast_panel
from components.models import point_of, predict_all, quantile_levels
from components.models.linear import fit_linear_baseline, predict_linear_baseline


def require_finite(forecasts: np.ndarray, who: str) -> np.ndarray:
    """`forecasts` (W, T, K) unchanged, or a `TrainingError` naming `who` (the
    model and the split) when any is NaN or infinite: a metric over them would
    be NaN, and a NaN is never reported, ranked or gated on as a result."""
    bad = ~np.isfinite(forecasts)
    if bad.any():
        window, step = np.argwhere(bad)[0][:2]
        raise TrainingError(
            f"{who}: {int(bad.sum())} of {bad.size} forecasts are not finite "
            f"(first: window {int(window)}, step {int(step) + 1}); the network "
            "overflowed on these inputs. Check them for extreme values or "
            "retrain with a lower `train.learning_rate`."
        )
    return forecasts


def score(
    prefix: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    raw_true: np.ndarray,
    raw_pred: np.ndarray,
    mase_scale: np.ndarray | None = None,
) -> dict[str, float]:
    """`{prefix}mse` etc. on what the model sees (normalized, transformed), and
    `{prefix}mse_raw` etc. in the data's original units; with `mase_scale`
    (K,) also `{prefix}mase`: each target's raw MAE over its scale, averaged
    over targets (`mase_scale`)."""
    out = {f"{prefix}{k}": v for k, v in regression_metrics(y_true, y_pred).items()}
    raw = regression_metrics(raw_true, raw_pred)
    out.update({f"{prefix}{k}_raw": v for k, v in raw.items()})
    out.update({f"{prefix}{k}": v for k, v in scale_free(raw_true, raw_pred).items()})
    if mase_scale is not None:
        error = np.abs(np.asarray(raw_pred, np.float64) - raw_true)  # (W, T, K)
        out[f"{prefix}mase"] = float(np.mean(error.mean(axis=(0, 1)) / mase_scale))
    return out


def per_step_mae(
    prefix: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    raw_true: np.ndarray,
    raw_pred: np.ndarray,
) -> dict[str, float]:
    """MAE at each lead time: `{prefix}mae_h1` ... `{prefix}mae_hT` (model space)
    and `{prefix}mae_raw_h1` ... (original units), averaged over windows and targets."""
    out = {}
    for name, true, pred in [("mae", y_true, y_pred), ("mae_raw", raw_true, raw_pred)]:
        errors = np.mean(
            np.abs(np.asarray(pred, np.float64) - true), axis=(0, 2)
        )  # (T,)
        out.update({f"{prefix}{name}_h{h + 1}": float(e) for h, e in enumerate(errors)})
    return out


def to_original(
    values: np.ndarray,
    base_levels: np.ndarray,
    normalizer: Normalizer,
    targets: list[str],
    transform: str,
) -> np.ndarray:
    """Forecasts (W, T, K) in model space -> original units.

    Under `diff` the steps are changes added up from the last observed level
    `base_levels` (W, K); under `log_diff` the same on the log scale.
    """
    unscaled = normalizer.inverse(values, targets)
    if transform == "none":
        return unscaled
    steps = np.cumsum(unscaled, axis=1)  # change from the base, per horizon step
    if transform == "diff":
        return base_levels[:, None, :] + steps
    return np.exp(np.log(base_levels)[:, None, :] + steps)


def quantiles_to_original(outputs: np.ndarray, *args) -> np.ndarray:
    """A quantile model's outputs (W, T, K, Q) -> original units, level by
    level (`to_original`'s other arguments follow)."""
    return np.stack(
        [to_original(outputs[..., j], *args) for j in range(outputs.shape[-1])],
        axis=-1,
    )


def to_model_space(
    levels: np.ndarray,
    base_levels: np.ndarray,
    normalizer: Normalizer,
    targets: list[str],
    transform: str,
) -> np.ndarray:
    """Inverse of `to_original`: level forecasts (W, T, K) -> what the model predicts.

    Lets baselines defined on levels (persistence, seasonal naive) be scored in
    model space too, whatever the transform.
    """
    if transform == "none":
        return normalizer.scale(levels, targets)
    if transform == "log_diff":
        levels, base_levels = np.log(levels), np.log(base_levels)
    previous = np.concatenate([base_levels[:, None, :], levels[:, :-1, :]], axis=1)
    return normalizer.scale(levels - previous, targets)  # step changes, scaled


def seasonal_naive_forecast(
    target_rows: np.ndarray,
    spec: WindowSpec,
    season: int,
    bounds: np.ndarray | None = None,
) -> np.ndarray:
    """Repeat the value one season before each target step (inside the window).

    Step h of window s (target row t = s + L - 1 + G + h) gets row
    t - season * ceil((G + h) / season), the latest observed row of the same phase.

    Args:
        target_rows: (N, K) one split's target columns; spec.input_width >= season.

    Returns:
        (W, T, K).
    """
    last = _last_input_rows(len(target_rows), spec, bounds)[:, None]  # (W, 1)
    ahead = spec.offset + np.arange(1, spec.horizon + 1)  # (T,) steps after `last`
    source = last + ahead - season * np.ceil(ahead / season).astype(np.int64)
    return target_rows[source]  # (W, T, K)


def persistence_forecast(
    target_rows: np.ndarray, spec: WindowSpec, bounds: np.ndarray | None = None
) -> np.ndarray:
    """Repeat the last observed target value over the horizon.

    Args:
        target_rows: (N, K) target columns of one split.

    Returns:
        (W, T, K): window i predicts target_rows[s_i + L - 1] for every step.
    """
    last = target_rows[_last_input_rows(len(target_rows), spec, bounds)]  # (W, K)
    return np.repeat(last[:, None, :], spec.horizon, axis=1)  # -> (W, T, K)


def level_windows(
    levels: np.ndarray, spec: WindowSpec, bounds: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per window of a split's target levels (N, K): the true targets
    (W, T, K) and the last observed level (W, K) forecasts are built on."""
    _, actual = make_windows(levels, levels, spec, bounds)
    return actual, levels[_last_input_rows(len(levels), spec, bounds)]


def _last_input_rows(
    n_rows: int, spec: WindowSpec, bounds: np.ndarray | None = None
) -> np.ndarray:
    """Row of each window's last input step: the base a forecast starts from."""
    return window_starts(n_rows, spec, bounds) + spec.input_width - 1


@dataclass(frozen=True)
class Evaluation:
    """Test-split scores of the model and the baselines, and forecasts for plots.

    Attributes:
        metrics: `test_*` for the model, `baseline_<name>_test_*` for baselines,
            each in normalized units and with a `_raw` twin in original units.
        actual: (W, T, K) true targets, original units.
        forecasts: name -> (W, T, K) forecasts in original units ("model" first).
        time_index: (W,) time of each window's first target step.
    """

    metrics: dict[str, float]
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    time_index: list
    # A panel: each window's series index, the series keys and
    # `panel_metrics.series_table` (one row per series and forecast).
    window_series: np.ndarray | None = None
    series: tuple[str, ...] = ()
    series_table: object = None  # pandas.DataFrame
    # (S, K) each series' scale (its MASE denominator, NaN filled) and (W, K)
    # each window's: the units a panel's intervals are calibrated in
    series_scale: np.ndarray | None = None
    window_scale: np.ndarray | None = None
    # A quantile model: its levels and forecasts (W, T, K, Q), original units
    levels: tuple[float, ...] = ()
    quantiles: np.ndarray | None = None


def evaluate_on_test(
    model,
    train: ScaledSplit,
    test: ScaledSplit,
    spec: WindowSpec,
    normalizer: Normalizer,
    targets: list[str],
    transform: str = "none",
    season: int | None = None,
    who: str = "the model on the test split",
    split: str = "test",
    between: np.ndarray | ScaledSplit | None = None,
    classical: tuple[str, ...] = (),
    references_on: str | None = None,
    combine: tuple[str, ...] = (),
) -> Evaluation:
    """Score `model` and the baselines on the same test windows, in both units.

    `split` names the scored split in the metric names (`{split}_mse`,
    `baseline_persistence_{split}_mse`, ...): the validation split is scored
    the same way for the guard rails.

    Baselines: persistence ("no change from the last observed level", whatever
    the transform), a linear autoregression fitted on the training windows only,
    with `season` the seasonal naive forecast, and the `classical` models
    (`ets`, `arima`: `components.evaluation.classical`, fitted on the training levels,
    filtered through `between`, the split between the training rows and the
    scored ones; `theta`: `per_series`). MASE is scaled by the training
    rows' naive error.

    A panel split (`test.bounds`) is windowed series by series, inverted
    with each window's series statistics and scored per series as well
    (`Evaluation.series_table`); its MASE is the mean of the series' MASE.
    On a panel the classical models are fitted per series
    (`per_series`: `ets`, `theta`, optionally `arima`), `between` being the
    validation split, on the Dask cluster at `references_on` when given.

    `combine` (a panel's `model.combine`, among `classical`): the model's
    forecast becomes the mean of the network's and theirs (scored as the
    model), the network alone is scored as `network` (`network_test_*`).

    Raises:
        TrainingError: the model's forecasts are not finite (`who` says which
            model and split).
    """
    bounds = test.bounds
    x_train, y_train = make_windows(train.features, train.targets, spec, train.bounds)
    x_test, y_test = make_windows(test.inputs, test.targets, spec, bounds)
    actual, base = level_windows(test.levels, spec, bounds)
    owners = window_series(len(test.inputs), spec, bounds)
    normalizer = normalizer.for_windows(owners)
    coef = fit_linear_baseline(x_train, y_train)
    outputs = require_finite(predict_all(model, x_test), who)  # (W, T, K[, Q])
    if test.id_channel:  # the baselines read the features alone
        x_test = x_test[:, :, :-1]
    levels = quantile_levels(model)
    predictions = {
        "model": point_of(outputs, levels),
        "linear": predict_linear_baseline(coef, x_test, y_test.shape[1:]),
    }
    forecasts = {
        name: to_original(values, base, normalizer, targets, transform)
        for name, values in predictions.items()
    }
    forecasts["persistence"] = persistence_forecast(test.levels, spec, bounds)
    if season:
        forecasts["seasonal_naive"] = seasonal_naive_forecast(
            test.levels, spec, season, bounds
        )
    timings = {}
    one_fit = [n for n in classical if bounds is None and n in CLASSICAL_MODELS]
    for name in one_fit:
        found = classical_forecast(
            name, train.levels, test.levels, spec, season, _levels_of(between)
        )
        forecasts[name] = found.forecast
        timings[f"baseline_{name}_seconds"] = found.seconds
    per_series = tuple(n for n in classical if n not in one_fit)
    if per_series:
        parts = [train, *([between] if between is not None else []), test]
        found = panel_references(per_series, parts, spec, season, references_on)
        forecasts.update(found.forecasts)
        timings.update(found.seconds)
    if combine:  # the served forecast: the network's averaged with references'
        forecasts["network"] = forecasts["model"]
        predictions["network"] = predictions.pop("model")
        forecasts["model"] = np.mean(
            [forecasts["network"], *(forecasts[name] for name in combine)], axis=0
        )
    for name in sorted(set(forecasts) - set(predictions)):  # level -> model space
        predictions[name] = to_model_space(
            forecasts[name], base, normalizer, targets, transform
        )
    metrics = dict(timings)
    scale = mase_scale(train.levels, season) if bounds is None else None
    for name in forecasts:
        prefix = _prefix(name, split)
        metrics.update(
            score(prefix, y_test, predictions[name], actual, forecasts[name], scale)
        )
        if spec.horizon > 1:
            metrics.update(
                per_step_mae(prefix, y_test, predictions[name], actual, forecasts[name])
            )
    quantiles = None
    if levels:
        quantiles = quantiles_to_original(outputs, base, normalizer, targets, transform)
        if combine:  # moved with the point forecast
            quantiles = quantiles + (forecasts["model"] - forecasts["network"])[..., None]
    table = series_scale = None
    if bounds is not None:
        per_series = panel_metrics.series_scale(*train.unpadded_levels(), season)
        series_scale = panel_metrics.filled(per_series)
        table = panel_metrics.series_table(
            test.series, owners, actual, forecasts, per_series
        )
        metrics.update(panel_metrics.aggregate(table, lambda n: _prefix(n, split)))
    return Evaluation(
        metrics=metrics,
        actual=actual,
        forecasts=forecasts,
        time_index=list(test.index[target_rows(len(test.inputs), spec, bounds)]),
        window_series=owners if bounds is not None else None,
        series=test.series,
        series_table=table,
        series_scale=series_scale,
        window_scale=None if series_scale is None else series_scale[owners],
        levels=tuple(levels or ()),
        quantiles=quantiles,
    )


@dataclass(frozen=True)
class PanelReferences:
    """Per-series classical forecasts of a panel's scored windows, original
    units, by name; `baseline_<name>_seconds` of their fits."""

    forecasts: dict[str, np.ndarray]
    seconds: dict[str, float]


def panel_references(
    names: tuple[str, ...],
    parts: list[ScaledSplit],
    spec: WindowSpec,
    season,
    on: str | None = None,
) -> PanelReferences:
    """`per_series.forecast_panel` for each of `names` on the scored split
    `parts[-1]`, fitted on `parts[0]` (training); `on`: a Dask scheduler's
    address to fit them on, else processes of this machine."""
    read = [_panel_part(p) for p in parts]
    forecasts, seconds = {}, {}
    for name in names:
        found = forecast_panel(name, read, spec, season, on)
        forecasts[name] = found.forecast
        seconds[f"baseline_{name}_seconds"] = found.seconds
    return PanelReferences(forecasts, seconds)


def _panel_part(split) -> PanelPart:
    """A split as `per_series` reads it (one series: a panel of one)."""
    times = time_keys(split.index)
    if split.bounds is None:
        return PanelPart(split.levels, np.array([0, len(split.levels)]), times)
    return PanelPart(split.levels, split.bounds, times, split.padded)


def _levels_of(split):
    return split.levels if isinstance(split, ScaledSplit) else split


def _prefix(name: str, split: str) -> str:
    """Metric prefix of a forecast: `test_` for the model, `network_test_`
    for the network alone under a combination, else `baseline_<name>_test_`."""
    if name == "network":  # the network alone, under `model.combine`
        return f"network_{split}_"
    return f"{split}_" if name == "model" else f"baseline_{name}_{split}_"
