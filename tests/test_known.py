"""Known covariates (`data.known`): values planned in advance (a promotion)
that every window reads up to its last target step. A series driven by one
is learned with it and not without it; a forecast needs the planned values
for the rows ahead, and says which is missing."""

import numpy as np
import pandas as pd
import pytest
from conftest import write_experiment

from components.config.loading import load_experiment
from components.config.schema import DataSpec
from components.data import preprocess
from components.data.windowing import make_windows


def _promotions(n=400, seed=0) -> pd.DataFrame:
    """Daily sales: a slow AR(1) level plus 3 on promotion days (random,
    planned in advance), plus a little noise."""
    rng = np.random.default_rng(seed)
    promo = (rng.random(n) < 0.3).astype(float)
    level = np.zeros(n)
    for t in range(1, n):
        level[t] = 0.7 * level[t - 1] + 0.3 * rng.normal()
    sales = 10 + level + 3 * promo + 0.1 * rng.normal(size=n)
    dates = pd.date_range("2024-01-01", periods=n, freq="D")
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "sales": sales, "promo": promo})


def test_known_columns_are_led_to_the_last_target_step():
    frame = pd.DataFrame({"y": np.arange(8.0), "k": np.arange(8.0) * 10})
    spec = DataSpec(targets=["y"], known=["k"])
    part = preprocess.prepare_split(frame, spec, ["y"], lead=3)
    np.testing.assert_array_equal(part.frame["k"].to_numpy()[:5], [30, 40, 50, 60, 70])
    assert part.frame["k"].isna().sum() == 3  # the last rows are only ever targets
    from components.config.schema import WindowSpec

    window = WindowSpec(input_width=2, horizon=2, offset=1)  # lead 3
    x, y = make_windows(part.frame.to_numpy(), part.frame[["y"]].to_numpy(), window)
    assert np.isfinite(x).all()
    # window 0 reads rows 0-1 and predicts rows 3-4: its last input row
    # carries k at row 4, the last target step
    assert x[0, -1, 1] == 40 and y[0, -1, 0] == 4


def test_a_known_column_that_is_a_target_is_refused():
    with pytest.raises(ValueError, match=r"`data.known` \['y'\] are also targets"):
        DataSpec(targets=["y"], known=["y"])


@pytest.fixture(scope="module")
def promo_runs(prefect_api, tmp_path_factory, _empty_mlflow_db):
    from flows.train import train_flow

    folder = tmp_path_factory.mktemp("known")
    (folder / "mlruns").mkdir()
    (folder / "mlruns" / "mlflow.db").write_bytes(_empty_mlflow_db.read_bytes())
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    csv = folder / "sales.csv"
    _promotions().to_csv(csv, index=False)
    path = write_experiment(
        folder / "promo.yaml",
        f"""
data: {{path: {csv}, time_column: date, frequency: D, targets: [sales]}}
split: {{val: 60, test: 60}}
window: {{input_width: 7, horizon: 2}}
model: {{kind: mlp, units: [16]}}
train: {{epochs: 60, patience: 10, learning_rate: 0.01}}
evaluate: {{classical: []}}
tracking: {{uri: "{uri}", experiment: known}}
""",
    )
    runs = {}
    for name, extra in {"past only": [], "known": ["data.known=[promo]"]}.items():
        runs[name] = train_flow(load_experiment(str(path), extra))
    return csv, runs


def test_a_planned_promotion_is_learned_only_as_a_known_column(promo_runs):
    _, runs = promo_runs
    past = runs["past only"].metrics["test_mae_raw"]
    known = runs["known"].metrics["test_mae_raw"]
    # without the plan a promotion day is a surprise worth about 3 * 0.3 on
    # average; with it only the AR level and the noise are left
    assert known < 0.5 * past


def test_a_forecast_reads_the_planned_values_for_the_rows_ahead(promo_runs):
    from components.tracking import packaging

    csv, runs = promo_runs
    result = runs["known"]
    model = packaging.load_model(result.forecaster_uri, result.tracking_uri)
    frame = pd.read_csv(csv)
    report = result.evaluation
    # the last test window: inputs end 2 rows before the data does
    request = frame.copy()
    request.loc[request.index[-2:], "sales"] = np.nan  # the rows ahead
    served = model.predict(request)
    np.testing.assert_allclose(
        served["sales"], report.forecasts["model"][-1, :, 0], rtol=1e-4
    )
    planned_off = request.copy()
    planned_off.loc[planned_off.index[-1], "promo"] = 1 - planned_off["promo"].iloc[-1]
    changed = model.predict(planned_off)["sales"].to_numpy()
    assert abs(changed[1] - served["sales"].iloc[1]) > 1.0  # the plan moves it
    with pytest.raises(Exception, match="must be given for the 2 rows after"):
        model.predict(frame)  # no rows ahead
    gap = request.copy()
    gap.loc[gap.index[-1], "promo"] = np.nan
    with pytest.raises(Exception, match=r"known column 'promo' is missing .* at 20"):
        model.predict(gap)


def test_a_panel_with_a_known_column_is_served_series_by_series(
    prefect_api, tmp_path, mlflow_uri
):
    from components.tracking import packaging
    from flows.train import train_flow

    frame = pd.concat(
        [_promotions(n=200, seed=s).assign(store=f"s{s}") for s in range(4)],
        ignore_index=True,
    )
    csv = tmp_path / "stores.csv"
    frame.to_csv(csv, index=False)
    config = load_experiment(
        str(write_experiment(tmp_path / "stores.yaml", f"""
data: {{path: {csv}, id_column: store, time_column: date, frequency: D,
        targets: [sales], known: [promo]}}
split: {{val: 30, test: 30}}
window: {{input_width: 7, horizon: 2}}
model: {{kind: mlp, units: [16]}}
train: {{epochs: 30, patience: 10, learning_rate: 0.01}}
tracking: {{uri: "{mlflow_uri}", experiment: stores}}
"""))
    )  # fmt: skip
    result = train_flow(config)
    assert result.metrics["test_mae_raw"] < 0.6  # the plan is read
    model = packaging.load_model(result.forecaster_uri, mlflow_uri)
    request = frame.copy()
    last_two = request.groupby("store").cumcount(ascending=False) < 2
    request.loc[last_two, "sales"] = np.nan  # each store's rows ahead
    served = model.predict(request)
    report = result.evaluation
    for store in ("s0", "s3"):
        j = report.series.index(store)
        last = np.flatnonzero(report.window_series == j)[-1]
        np.testing.assert_allclose(
            served[served["series"] == store]["sales"],
            report.forecasts["model"][last, :, 0], rtol=1e-4,
        )  # fmt: skip
    short = request.drop(index=request.index[(request["store"] == "s1")][-1])
    with pytest.raises(Exception, match="series 's1'.* must be given for the 2 rows"):
        model.predict(short)
