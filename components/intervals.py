"""Prediction intervals for any point forecaster: split conformal calibration.

A point forecast does not say how far off it may be. Split conformal
prediction turns any model's errors on windows it never trained on (the
validation split) into intervals with a coverage guarantee on exchangeable
data: the interval at level c is the forecast +- the ceil((n + 1) c)-th smallest
absolute validation error, per horizon step and target (errors grow with the
lead time, and each target has its own units). NeuralForecast
(`PredictionIntervals`) and Darts (`ConformalNaiveModel`) offer the same; here
it needs no retraining and works for every kind.

The scores a forecaster reads, per level c (alpha = 1 - c):
- coverage: the share of actual values inside the interval (nominal: c);
- width: the mean interval width, original units;
- interval (Winkler) score: width + (2 / alpha) x the distance by which the
  actual value falls outside; lower is better, and a too-narrow interval pays.

Shape legend: W windows, T horizon steps, K targets.
"""

import math

import numpy as np


def level_name(level: float) -> str:
    """0.8 -> "80", 0.975 -> "97.5": the level in metric names."""
    return f"{100 * level:g}"


def conformal_radius(errors: np.ndarray, level: float) -> np.ndarray:
    """Half-width (T, K) of the central interval at `level` from calibration
    errors (W, T, K) = actual - forecast, original units.

    The finite-sample quantile ceil((n + 1) level) / n of the absolute errors;
    with too few windows for it (n < 1 / (1 - level) - 1) the largest error.
    """
    absolute = np.abs(np.asarray(errors, np.float64))
    n = absolute.shape[0]
    rank = min(math.ceil((n + 1) * level), n)  # 1-based
    return np.sort(absolute, axis=0)[rank - 1]


def windows_needed(level: float) -> int:
    """Calibration windows below which the interval at `level` is simply the
    largest error seen (ceil((n + 1) level) > n), and no longer has its
    coverage guarantee: 4 for 80 %, 19 for 95 %."""
    return math.ceil(level / (1.0 - level) - 1e-9)


def interval_metrics(
    actual: np.ndarray,
    forecast: np.ndarray,
    radius: np.ndarray,
    level: float,
    prefix: str = "test_",
) -> dict[str, float]:
    """Coverage, mean width and mean interval score of forecast +- radius.

    Args:
        actual, forecast: (W, T, K) original units.
        radius: (T, K) from `conformal_radius`, or (W, T, K) for intervals
            whose width varies by window (a model's own Gaussian intervals).

    Returns:
        `{prefix}coverage_{L}`, `{prefix}width_{L}_raw`,
        `{prefix}interval_score_{L}_raw`, and the coverage at each lead time
        `{prefix}coverage_{L}_h{h}` when T > 1 (L = `level_name(level)`).
    """
    actual = np.asarray(actual, np.float64)
    radius = radius[None] if np.ndim(radius) == 2 else radius
    lower, upper = forecast - radius, forecast + radius
    inside = (actual >= lower) & (actual <= upper)
    alpha = 1.0 - level
    penalty = (2.0 / alpha) * (
        np.maximum(lower - actual, 0.0) + np.maximum(actual - upper, 0.0)
    )
    name = level_name(level)
    out = {
        f"{prefix}coverage_{name}": float(inside.mean()),
        f"{prefix}width_{name}_raw": float((upper - lower).mean()),
        f"{prefix}interval_score_{name}_raw": float((upper - lower + penalty).mean()),
    }
    if actual.shape[1] > 1:
        for h, share in enumerate(inside.mean(axis=(0, 2))):
            out[f"{prefix}coverage_{name}_h{h + 1}"] = float(share)
    return out


def conformal_intervals(
    calibration_actual: np.ndarray,
    calibration_forecast: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    levels: list[float],
    calibration_scale: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[float, np.ndarray]]:
    """Calibrate on one set of windows, score on another (all (W, T, K),
    original units); return the metrics of every level and its radius (T, K).

    With `calibration_scale` and `scale` ((W, K) each: a panel's per-series
    scale of each window) the errors are calibrated in units of that scale
    and each window's interval is the radius times its own scale, so a
    series ten times larger gets intervals ten times wider; the radii
    returned are then in those units.
    """
    errors = np.asarray(calibration_actual, np.float64) - calibration_forecast
    if calibration_scale is not None:
        errors = errors / calibration_scale[:, None, :]
    metrics, radii = {}, {}
    for level in levels:
        radii[level] = conformal_radius(errors, level)
        radius = radii[level] if scale is None else radii[level] * scale[:, None, :]
        metrics.update(interval_metrics(actual, forecast, radius, level))
    return metrics, radii
