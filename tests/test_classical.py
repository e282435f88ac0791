"""ETS and ARIMA baselines: fitted on the training rows only, run forward over
the scored windows without refitting, on the same windows as the networks."""

import numpy as np
import pandas as pd
import pytest

from components.config.schema import WindowSpec
from components.data.preprocess import Normalizer, ScaledSplit
from components.evaluation.classical import fit_model, forecast_windows
from components.evaluation.evaluate import evaluate_on_test, mase_scale


def _series(n=260, seed=0):
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0, 0.3, n)
    return (10 + 3 * np.sin(2 * np.pi * t / 12) + 0.02 * t + noise)[:, None]


@pytest.mark.parametrize("name", ["ets", "arima"])
def test_each_window_is_the_fitted_model_applied_up_to_its_origin(name):
    y = _series()
    spec = WindowSpec(input_width=12, horizon=3, stride=5)
    train, between, scored = y[:160], y[160:200], y[200:]
    found = forecast_windows(name, train, scored, spec, season=12, between=between)
    starts = np.arange(0, len(scored) - spec.span + 1, spec.stride)
    assert found.forecast.shape == (len(starts), 3, 1)
    fitted = fit_model(name, train[:, 0], 12)  # parameters from train only
    for w in (0, len(starts) // 2, len(starts) - 1):
        origin = 200 + starts[w] + spec.input_width - 1
        applied = fitted.apply(y[: origin + 1, 0] - fitted.mean)
        expected = applied.forecast(3) + fitted.mean
        np.testing.assert_allclose(found.forecast[w, :, 0], expected, rtol=1e-6)


def test_later_rows_never_change_an_earlier_forecast():
    y = _series()
    spec = WindowSpec(input_width=12, horizon=2)
    first = forecast_windows("arima", y[:200], y[200:], spec).forecast
    changed = y.copy()
    changed[200 + 12 :] += 50.0  # everything after the first origin
    second = forecast_windows("arima", y[:200], changed[200:], spec).forecast
    np.testing.assert_allclose(second[0], first[0])
    assert not np.allclose(second[5], first[5])


def test_classical_baselines_are_scored_on_the_models_windows():
    import keras

    y = _series(300)
    spec = WindowSpec(input_width=12, horizon=2)
    normalizer = Normalizer(("y",), (float(y[:200].mean()),), (float(y[:200].std()),))

    def split(rows, start):
        scaled = normalizer.scale(rows, ["y"]).astype("float32")
        return ScaledSplit(scaled, scaled, rows, pd.RangeIndex(start, start + len(rows)))

    train, val, test = split(y[:200], 0), split(y[200:240], 200), split(y[240:], 240)
    model = keras.Sequential(
        [keras.Input((12, 1)), keras.layers.Flatten(), keras.layers.Dense(2),
         keras.layers.Reshape((2, 1))]
    )  # fmt: skip
    report = evaluate_on_test(
        model, train, test, spec, normalizer, ["y"], season=12,
        between=val.levels, classical=("ets", "arima"),
    )  # fmt: skip
    shapes = {name: f.shape for name, f in report.forecasts.items()}
    assert set(shapes.values()) == {report.actual.shape} and len(shapes) == 6
    for name in ("ets", "arima", "model", "persistence", "seasonal_naive", "linear"):
        prefix = "test_" if name == "model" else f"baseline_{name}_test_"
        assert np.isfinite(report.metrics[f"{prefix}mse_raw"])
        assert report.metrics[f"{prefix}mase"] > 0
    assert report.metrics["baseline_ets_seconds"] >= 0
    # On a clean seasonal series with a trend, ETS with the season beats persistence.
    assert report.metrics["baseline_ets_test_mase"] < (
        report.metrics["baseline_persistence_test_mase"]
    )


def test_mase_scale_is_the_in_sample_naive_error():
    levels = np.array([[1.0, 10.0], [3.0, 10.0], [2.0, 14.0], [6.0, 10.0]])
    np.testing.assert_allclose(mase_scale(levels), [(2 + 1 + 4) / 3, (0 + 4 + 4) / 3])
    np.testing.assert_allclose(mase_scale(levels, season=2), [(1 + 3) / 2, (4 + 0) / 2])


def test_a_long_training_split_is_fitted_on_its_last_rows(monkeypatch):
    import components.evaluation.classical as classical

    y = _series(300)
    spec = WindowSpec(input_width=12, horizon=2)
    monkeypatch.setattr(classical, "MAX_FIT_ROWS", 100)
    capped = forecast_windows("arima", y[:200], y[200:], spec).forecast
    np.testing.assert_allclose(
        capped, forecast_windows("arima", y[100:200], y[200:], spec).forecast
    )


def test_arima_forecast_deviations_match_statsmodels_own_intervals():
    y = _series()
    spec = WindowSpec(input_width=12, horizon=3, stride=7)
    found = forecast_windows("arima", y[:160], y[200:], spec, between=y[160:200])
    fitted = fit_model("arima", y[:160, 0], None)
    for w in (0, len(found.std) - 1):
        origin = 200 + 7 * w + 11
        own = fitted.apply(y[: origin + 1, 0] - fitted.mean).get_forecast(3)
        np.testing.assert_allclose(found.std[w, :, 0], np.sqrt(own.var_pred_mean))
    assert forecast_windows("ets", y[:160], y[200:], spec).std is None


def test_arima_chooses_its_order_on_the_last_rows_and_fits_only_that_one(monkeypatch):
    """On a long training split the order is picked by AIC on the last
    SELECT_ROWS rows (statsmodels' own fits), then only it is fitted on all."""
    import warnings

    from statsmodels.tsa.statespace.sarimax import SARIMAX
    from statsmodels.tsa.stattools import adfuller

    import components.evaluation.classical as classical

    monkeypatch.setattr(classical, "SELECT_ROWS", 120)
    y = _series(400)[:, 0]
    d = int(adfuller(y[-120:], autolag="AIC")[1] > 0.05)
    mean = 0.0 if d else y.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aic = {
            (p, d, q): SARIMAX(y[-120:] - mean, order=(p, d, q)).fit(disp=False).aic
            for p in range(3) for q in range(3) if p or q or d
        }  # fmt: skip
    p, d, q = min(aic, key=aic.get)
    fitted = fit_model("arima", y, None)
    assert fitted.label == f"ARIMA({p},{d},{q})"
    whole = SARIMAX(y - mean, order=(p, d, q)).fit(disp=False)
    assert fitted.aic == pytest.approx(whole.aic)  # then fitted on every row
