"""Metrics in normalized and original units, and the baselines every model must beat.

All arrays here are windows in the one shape: (W, T, K) = (windows, horizon,
targets). Baselines are scored with the same function as the networks.
"""

from dataclasses import dataclass

import numpy as np

from components.config import WindowSpec
from components.preprocess import Normalizer, ScaledSplit
from components.windowing import make_windows, window_starts


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, MAE and RMSE over every window, step and target."""
    error = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    mse = float(np.mean(error**2))
    return {"mse": mse, "mae": float(np.mean(np.abs(error))), "rmse": mse**0.5}


def score(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    normalizer: Normalizer,
    targets: list[str],
    prefix: str,
) -> dict[str, float]:
    """`{prefix}mse` etc. in normalized units and `{prefix}mse_raw` in original ones."""
    scaled = regression_metrics(y_true, y_pred)
    raw = regression_metrics(
        normalizer.inverse(y_true, targets), normalizer.inverse(y_pred, targets)
    )
    out = {f"{prefix}{name}": value for name, value in scaled.items()}
    out.update({f"{prefix}{name}_raw": value for name, value in raw.items()})
    return out


def persistence_forecast(target_rows: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Repeat the last observed target value over the horizon.

    Args:
        target_rows: (N, K) target columns of one split.

    Returns:
        (W, T, K): window i predicts target_rows[i + L - 1] for every step.
    """
    last = target_rows[window_starts(len(target_rows), spec) + spec.input_width - 1]
    return np.repeat(last[:, None, :], spec.horizon, axis=1)  # (W, K) -> (W, T, K)


def fit_linear_baseline(
    x: np.ndarray, y: np.ndarray, ridge: float = 1e-3
) -> np.ndarray:
    """Ridge least squares from the flattened window to all horizon steps.

    Args:
        x: (W, L, C) training windows; y: (W, T, K) their targets.

    Returns:
        coefficients of shape (L*C + 1, T*K); the last row is the intercept.
    """
    design = _design(x)  # (W, L*C + 1)
    penalty = ridge * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0  # never shrink the intercept
    gram = design.T @ design + penalty
    return np.linalg.solve(gram, design.T @ y.reshape(len(y), -1))


def predict_linear_baseline(coef: np.ndarray, x: np.ndarray, output_shape) -> np.ndarray:
    """(W, L, C) -> (W, T, K) with coefficients from `fit_linear_baseline`."""
    return (_design(x) @ coef).reshape(len(x), *output_shape)


def _design(x: np.ndarray) -> np.ndarray:
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.hstack([flat, np.ones((len(x), 1))])


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


def evaluate_on_test(
    model,
    train: ScaledSplit,
    test: ScaledSplit,
    spec: WindowSpec,
    normalizer: Normalizer,
    targets: list[str],
) -> Evaluation:
    """Score `model`, persistence and a linear autoregression on the same windows.

    The linear baseline is fitted on the training windows only.
    """
    x_train, y_train = make_windows(train.inputs, train.targets, spec)
    x_test, y_test = make_windows(test.inputs, test.targets, spec)
    output_shape = y_test.shape[1:]
    coef = fit_linear_baseline(x_train, y_train)
    predictions = {
        "model": np.asarray(model.predict(x_test, verbose=0), np.float64),
        "persistence": persistence_forecast(test.targets, spec),
        "linear": predict_linear_baseline(coef, x_test, output_shape),
    }
    metrics = score(y_test, predictions["model"], normalizer, targets, "test_")
    for name in ("persistence", "linear"):
        prefix = f"baseline_{name}_test_"
        metrics.update(score(y_test, predictions[name], normalizer, targets, prefix))
    first_target = window_starts(len(test.inputs), spec) + spec.input_width
    return Evaluation(
        metrics=metrics,
        actual=normalizer.inverse(y_test, targets),
        forecasts={k: normalizer.inverse(v, targets) for k, v in predictions.items()},
        time_index=list(test.index[first_target]),
    )
