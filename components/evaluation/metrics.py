"""Error metrics shared by a single series' and a panel's scores: MSE, MAE,
RMSE, sMAPE, ND and the MASE denominator. Arrays in any shape; the windows
shape is (W, T, K)."""

import numpy as np

# Every baseline a model is scored beside, in the order tables show them
# (`evaluation`: the first three; `classical` / `per_series`: the rest), and
# how tables and descriptions name them.
BASELINE_LABELS = {
    "persistence": "persistence",
    "seasonal_naive": "seasonal",
    "linear": "linear AR",
    "ets": "ETS",
    "theta": "Theta",
    "arima": "ARIMA",
}
BASELINES = tuple(BASELINE_LABELS)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, MAE and RMSE over every window, step and target."""
    error = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    mse = float(np.mean(error**2))
    return {"mse": mse, "mae": float(np.mean(np.abs(error))), "rmse": mse**0.5}


def scale_free(raw_true: np.ndarray, raw_pred: np.ndarray) -> dict[str, float]:
    """sMAPE (mean of 200 |e| / (|y| + |ŷ|), in %) and ND (sum |e| / sum |y|),
    pooled over every window, step and target, in original units."""
    actual = np.asarray(raw_true, np.float64)
    error = np.abs(np.asarray(raw_pred, np.float64) - actual)
    total = np.abs(actual).sum()
    return {
        "smape": float(np.mean(smape_terms(actual, raw_pred))),
        "nd": float(error.sum() / total) if total > 0 else float("nan"),
    }


def mase_scale(train_levels: np.ndarray, season: int | None = None) -> np.ndarray:
    """The MASE denominator per target (K,): the mean absolute error of the
    (seasonal) naive forecast on the training rows, in original units (lag
    `season`, else 1). A MASE below 1 beats that in-sample naive forecast."""
    lag = season or 1
    levels = np.asarray(train_levels, np.float64)
    scale = np.mean(np.abs(levels[lag:] - levels[:-lag]), axis=0)
    return np.where(scale > 0, scale, np.nan)


def smape_terms(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """200 |e| / (|y| + |ŷ|) elementwise, 0 where both are 0 (a perfect zero)."""
    error = np.abs(np.asarray(forecast, np.float64) - actual)
    total = np.abs(actual) + np.abs(forecast)
    return np.divide(200 * error, total, out=np.zeros_like(error), where=total > 0)
