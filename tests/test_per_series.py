"""Per-series classical references of a panel (ETS, Theta): each series'
model is statsmodels' own fit on its training rows, later rows are filtered
through without refitting, and a panel's windows get them in the leaderboard,
the series table and the guard rail. Real series: statsmodels' El Niño
(monthly sea temperatures) and US macro data (quarterly)."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.forecasting.theta import ThetaModel
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from components.config.schema import WindowSpec
from components.evaluation import per_series
from components.evaluation.quality import check_validation


def _elnino() -> np.ndarray:
    wide = sm.datasets.elnino.load_pandas().data
    return wide.drop(columns="YEAR").to_numpy(np.float64).ravel()  # monthly


def _macro(column: str) -> np.ndarray:
    return sm.datasets.macrodata.load_pandas().data[column].to_numpy(np.float64)


SERIES = [
    (_elnino()[:240], 12),
    (_macro("realgdp")[:120], 4),
    (_macro("unemp")[:120], 4),
    (_macro("cpi")[:100], None),
]


@pytest.mark.parametrize("y, season", SERIES)
def test_theta_equals_statsmodels_own_forecast(y, season):
    fit = per_series.fit_series("theta", y, season)
    period = season or 1
    expected = ThetaModel(y, period=period, deseasonalize=period > 1).fit().forecast(6)
    found = per_series.forecast_series(fit, y, np.array([len(y) - 1]), 6)[0]
    np.testing.assert_allclose(found, np.asarray(expected), rtol=1e-9)


@pytest.mark.parametrize("y, season", SERIES)
def test_ets_equals_statsmodels_own_forecast_of_the_chosen_model(y, season):
    fit = per_series.fit_series("ets", y, season)
    assert fit.model == "ets" and fit.label.startswith("ETS(")
    options = {
        k: fit.params[k]
        for k in ("trend", "damped_trend", "seasonal", "seasonal_periods")
    }
    expected = ExponentialSmoothing(y, **options).fit(use_brute=False).forecast(3)
    # three steps: below a season, where statsmodels' seasonal index and the
    # textbook's (the latest state of the same phase) agree
    found = per_series.forecast_series(fit, y, np.array([len(y) - 1]), 3)[0]
    np.testing.assert_allclose(found, np.asarray(expected), rtol=1e-6)


@pytest.mark.parametrize("model", ["ets", "theta"])
def test_a_later_origin_filters_the_new_rows_with_the_training_fit(model):
    y = _elnino()
    fit = per_series.fit_series(model, y[:240], 12)  # parameters from 240 rows
    origins = np.array([239, 260, 300])
    together = per_series.forecast_series(fit, y, origins, 4)
    for w, origin in enumerate(origins):  # each origin alone, on rows up to it
        alone = per_series.forecast_series(fit, y[: origin + 1], np.array([origin]), 4)
        np.testing.assert_allclose(together[w], alone[0], rtol=1e-9)
    changed = y.copy()
    changed[261:] += 5.0  # rows after the second origin cannot move it
    moved = per_series.forecast_series(fit, changed, origins, 4)
    np.testing.assert_allclose(moved[:2], together[:2])
    assert not np.allclose(moved[2], together[2])


def test_the_season_test_and_the_chosen_ets_agree_on_real_series():
    assert per_series.has_season(_elnino()[:240], 12)
    growth = 100 * np.diff(np.log(_macro("realgdp")[:121]))  # quarterly, no season
    assert not per_series.has_season(growth, 4)
    assert per_series.fit_series("ets", growth, 4).label.endswith(",N)")
    assert not per_series.fit_series("ets", _elnino()[:240], 12).label.endswith(",N)")


def test_a_panel_forecasts_every_window_of_every_series_from_its_history():
    y = _elnino()
    series = [y[:300], y[100:400], y[200:500] * 1.5]
    train = [s[:200] for s in series]
    scored = [s[180:] for s in series]  # 20 rows of context from training
    spec = WindowSpec(input_width=20, horizon=3)

    def part(pieces, first):
        bounds = np.concatenate([[0], np.cumsum([len(p) for p in pieces])])
        times = np.concatenate([np.arange(first, first + len(p)) for p in pieces])
        return per_series.PanelPart(np.concatenate(pieces)[:, None], bounds, times)

    found = per_series.forecast_panel(
        "theta", [part(train, 0), part(scored, 180)], spec, 12
    )
    n_windows = [len(s) - spec.span + 1 for s in scored]
    assert found.forecast.shape == (sum(n_windows), 3, 1)
    second = sum(n_windows[:1]) + 5  # window 5 of series 1: origin row 180+5+19
    fit = per_series.fit_series("theta", train[1], 12)
    alone = per_series.forecast_series(fit, series[1], np.array([204]), 3)[0]
    np.testing.assert_allclose(found.forecast[second, :, 0], alone, rtol=1e-9)
    assert sum(found.chosen.values()) == 3


@pytest.mark.slow
def test_worker_processes_fit_what_this_process_fits():
    y = _elnino()
    series = [y[i : i + 120] * (1 + i / 100) for i in range(0, 640, 10)]  # 64 series
    assert len(series) >= per_series.PARALLEL_FROM
    parallel, _ = per_series.fit_panel("theta", series, 12, workers=2)
    alone = [per_series.fit_series("theta", s, 12) for s in series]
    assert [f.label for f in parallel] == [f.label for f in alone]
    for a, b in zip(parallel, alone):
        assert a.params["alpha"] == pytest.approx(b.params["alpha"])
    again, _ = per_series.fit_panel("theta", series, 12, workers=2)
    assert again is parallel  # cached in this process


def test_the_guard_rail_names_the_best_per_series_reference():
    metrics = {
        "val_mase": 0.50,
        "baseline_persistence_val_mase": 1.0,
        "baseline_linear_val_mase": 0.6,
        "baseline_ets_val_mase": 0.45,
        "baseline_theta_val_mase": 0.40,
        "val_mse": 0.1,  # better than every reference's MSE: not what decides
        "baseline_persistence_val_mse": 1.0,
        "baseline_linear_val_mse": 0.6,
        "baseline_theta_val_mse": 0.5,
    }
    found = check_validation(metrics, "gru", unit="mase")
    assert found.losses == ("classical",)
    assert "gru (val mase 0.5) does not beat per-series Theta (0.4)" in found.message
    assert check_validation(metrics, "gru").losses == ()  # by MSE it wins
    metrics["val_mase"] = 0.30
    assert check_validation(metrics, "gru", unit="mase").message is None
    del metrics["baseline_ets_val_mase"], metrics["baseline_theta_val_mase"]
    metrics["val_mase"] = 0.50  # no per-series references: the default ones
    assert check_validation(metrics, "gru", unit="mase").losses == ()


def test_panel_references_reach_the_leaderboard_and_the_series_table(tmp_path):
    """One real panel run end to end is in test_panel_flows; here the
    evaluation alone, on a tiny network, with the references per series."""
    import keras

    from components.data.preprocess import Normalizer, ScaledSplit
    from components.evaluation.evaluate import evaluate_on_test

    y = _elnino()
    rows = np.concatenate([y[:300], y[300:600]])[:, None]
    normalizer = Normalizer(("y",), (float(rows.mean()),), (float(rows.std()),))

    def split(a, b):
        pieces = [rows[a:b], rows[300 + a : 300 + b]]
        levels = np.concatenate(pieces)
        scaled = normalizer.scale(levels, ["y"]).astype("float32")
        index = pd.Index(np.concatenate([np.arange(a, b), np.arange(a, b)]))
        bounds = np.array([0, b - a, 2 * (b - a)])
        return ScaledSplit(scaled, scaled, levels, index, bounds, ("s0", "s1"))

    spec = WindowSpec(input_width=24, horizon=3)
    train, val, test = split(0, 240), split(216, 270), split(246, 300)
    model = keras.Sequential([keras.Input((24, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3), keras.layers.Reshape((3, 1))])  # fmt: skip
    report = evaluate_on_test(
        model, train, test, spec, normalizer, ["y"], season=12, between=val,
        classical=("ets", "theta"),
    )  # fmt: skip
    for name in ("ets", "theta"):
        assert np.isfinite(report.metrics[f"baseline_{name}_test_mase"])
        assert report.metrics[f"baseline_{name}_seconds"] >= 0
    table = report.series_table
    assert set(table["model"]) >= {"model", "ets", "theta", "seasonal_naive"}
    assert set(table.loc[table["model"] == "theta", "series"]) == {"s0", "s1"}
    # a fitted per-series model beats a random untrained network
    assert report.metrics["baseline_theta_test_mase"] < report.metrics["test_mase"]
