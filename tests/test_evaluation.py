"""Metrics on hand-computed arrays and the two baselines."""

import numpy as np
import pandas as pd
import pytest

from components.common.errors import TrainingError
from components.config.schema import WindowSpec
from components.data.preprocess import Normalizer, ScaledSplit
from components.data.windowing import make_windows
from components.evaluation.evaluate import (
    evaluate_on_test,
    fit_linear_baseline,
    persistence_forecast,
    predict_linear_baseline,
    regression_metrics,
    require_finite,
    score,
    to_original,
)


def test_regression_metrics_by_hand():
    y_true = np.array([[[1.0]], [[2.0]], [[3.0]], [[4.0]]])
    y_pred = np.array([[[2.0]], [[2.0]], [[1.0]], [[4.0]]])
    # errors 1, 0, -2, 0 -> mse (1 + 4) / 4, mae 3 / 4
    assert regression_metrics(y_true, y_pred) == {
        "mse": 1.25,
        "mae": 0.75,
        "rmse": pytest.approx(1.25**0.5),
    }


def test_score_reports_both_units():
    normalizer = Normalizer(("a", "b"), (10.0, 0.0), (2.0, 1.0))
    y_true = np.zeros((2, 1, 1))
    y_pred = np.ones((2, 1, 1))  # 1 normalized unit of `a` = 2 original units
    raw_true = to_original(y_true, None, normalizer, ["a"], "none")
    raw_pred = to_original(y_pred, None, normalizer, ["a"], "none")
    np.testing.assert_array_equal(raw_pred - raw_true, 2.0)
    metrics = score("test_", y_true, y_pred, raw_true, raw_pred)
    assert metrics["test_mse"] == 1.0 and metrics["test_mse_raw"] == 4.0
    assert metrics["test_mae_raw"] == 2.0 and metrics["test_rmse_raw"] == 2.0


def test_differenced_forecasts_are_reintegrated_from_the_last_level():
    normalizer = Normalizer(("a",), (1.0,), (2.0,))
    # two windows, horizon 3; model-space steps 0, 1, -1 -> changes 1, 3, -1
    steps = np.array([[[0.0], [1.0], [-1.0]], [[0.0], [0.0], [0.0]]])
    base = np.array([[100.0], [50.0]])
    levels = to_original(steps, base, normalizer, ["a"], "diff")
    np.testing.assert_allclose(levels[:, :, 0], [[101, 104, 103], [51, 52, 53]])
    logs = to_original(steps, base, normalizer, ["a"], "log_diff")
    np.testing.assert_allclose(logs[0, :, 0], 100 * np.exp([1, 4, 3]))


def test_persistence_repeats_the_last_input_value():
    rows = np.arange(8, dtype=float)[:, None]
    forecast = persistence_forecast(rows, WindowSpec(input_width=3, horizon=2))
    assert forecast.shape == (4, 2, 1)
    np.testing.assert_array_equal(forecast[:, :, 0], [[2, 2], [3, 3], [4, 4], [5, 5]])


def test_linear_baseline_recovers_an_exact_autoregression():
    rng = np.random.default_rng(0)
    series = np.zeros(300)
    series[:2] = rng.standard_normal(2)
    for t in range(2, 300):  # x_t = 0.6 x_{t-1} - 0.3 x_{t-2} + 0.5 + noise
        series[t] = 0.6 * series[t - 1] - 0.3 * series[t - 2] + 0.5
        series[t] += 0.1 * rng.standard_normal()
    rows = series[:, None]
    spec = WindowSpec(input_width=2, horizon=1)
    x, y = make_windows(rows, rows, spec)
    coef = fit_linear_baseline(x, y, ridge=0.0)
    np.testing.assert_allclose(coef[:, 0], [-0.3, 0.6, 0.5], atol=0.05)
    prediction = predict_linear_baseline(coef, x, (1, 1))
    assert regression_metrics(y, prediction)["mse"] < 0.012  # ~ noise variance 0.01


def test_per_step_mae_by_hand():
    from components.evaluation.evaluate import per_step_mae

    y_true = np.zeros((2, 3, 1))
    y_pred = np.array([[[1.0], [2.0], [3.0]], [[1.0], [0.0], [-3.0]]])
    metrics = per_step_mae("test_", y_true, y_pred, y_true * 10, y_pred * 10)
    assert metrics == {
        "test_mae_h1": 1.0,
        "test_mae_h2": 1.0,
        "test_mae_h3": 3.0,
        "test_mae_raw_h1": 10.0,
        "test_mae_raw_h2": 10.0,
        "test_mae_raw_h3": 30.0,
    }


def test_seasonal_naive_reads_one_season_back():
    from components.evaluation.evaluate import seasonal_naive_forecast

    rows = np.arange(20, dtype=float)[:, None]
    spec = WindowSpec(input_width=4, horizon=6)
    forecast = seasonal_naive_forecast(rows, spec, season=4)
    # window 0: last input row 3; steps 1..6 hit rows 4..9 -> same phase rows 0..3, 0, 1
    np.testing.assert_array_equal(forecast[0, :, 0], [0, 1, 2, 3, 0, 1])
    np.testing.assert_array_equal(forecast[2, :, 0], [2, 3, 4, 5, 2, 3])
    offset = seasonal_naive_forecast(
        rows, WindowSpec(input_width=4, horizon=1, offset=2), 4
    )
    assert offset[0, 0, 0] == 2  # target row 6 -> row 2


def test_level_baselines_map_into_model_space_for_every_transform():
    from components.evaluation.evaluate import to_model_space

    normalizer = Normalizer(("a",), (1.0,), (2.0,))
    base = np.array([[100.0], [50.0]])
    levels = np.array([[[101.0], [104.0]], [[50.0], [50.0]]])
    for transform in ("none", "diff", "log_diff"):
        model_space = to_model_space(levels, base, normalizer, ["a"], transform)
        back = to_original(model_space, base, normalizer, ["a"], transform)
        np.testing.assert_allclose(back, levels)
    no_change = to_model_space(levels[1:], base[1:], normalizer, ["a"], "diff")
    np.testing.assert_allclose(no_change, (0 - 1.0) / 2.0)


def _split(values: np.ndarray) -> ScaledSplit:
    rows = values.astype("float32")[:, None]
    return ScaledSplit(rows, rows, values[:, None], pd.RangeIndex(len(values)))


def test_non_finite_forecasts_fail_evaluation_naming_the_model_and_split():
    import keras

    spec = WindowSpec(input_width=4, horizon=1)
    series = np.sin(np.arange(60) / 3.0)
    model = keras.Sequential(
        [keras.Input((4, 1)), keras.layers.Flatten(), keras.layers.Dense(1),
         keras.layers.Reshape((1, 1))]
    )  # fmt: skip
    normalizer = Normalizer(("y",), (0.0,), (1.0,))
    train, test = _split(series[:40]), _split(series[40:])
    finite = evaluate_on_test(model, train, test, spec, normalizer, ["y"])
    assert np.isfinite(list(finite.metrics.values())).all()
    for variable in model.weights:  # a layer forced to overflow float32
        variable.assign(np.full(variable.shape, 1e38, "float32"))
    with pytest.raises(TrainingError, match=r"gru on the test split: \d+ of 16 forecasts"):
        evaluate_on_test(
            model, train, test, spec, normalizer, ["y"], who="gru on the test split"
        )


def test_require_finite_names_the_first_bad_window_and_step():
    values = np.zeros((3, 2, 1))
    assert require_finite(values, "m") is values
    values[1, 1, 0] = np.nan
    values[2, 0, 0] = np.inf
    with pytest.raises(TrainingError, match=r"m: 2 of 6 .* window 1, step 2"):
        require_finite(values, "m")
