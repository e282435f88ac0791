"""The packaged model: same forecasts in the flow, in a fresh process from the
registry, and over HTTP from `mlflow models serve`; bad input named."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from conftest import free_port, make_series, run_cli, wait_for, write_experiment

from components.common.errors import DataError
from components.config.loading import load_experiment

HORIZON = 3


@pytest.fixture
def daily_experiment(tmp_path, mlflow_uri):
    """Daily data with a time column, calendar features and differencing: every
    step between raw rows and forecasts that serving must repeat."""
    frame = make_series(200)
    frame.insert(0, "date", pd.date_range("2024-01-01", periods=200, freq="D"))
    data = tmp_path / "daily.csv"
    frame.to_csv(data, index=False)
    return write_experiment(
        tmp_path / "daily.yaml",
        f"""
name: daily
data: {{path: {data}, time_column: date, calendar: [day], transform: diff}}
split: {{test: 40, val: 20}}
window: {{input_width: 8, horizon: {HORIZON}}}
model: {{kind: gru, units: [8]}}
train: {{epochs: 3}}
tracking: {{uri: "{mlflow_uri}", registered_model: daily_model}}
""",
    ), frame


@pytest.fixture
def trained(prefect_api, daily_experiment, mlflow_uri):
    from components.tracking import registry as model_registry
    from flows.train import train_flow

    path, frame = daily_experiment
    result = train_flow(load_experiment(path))
    version = model_registry.register(
        mlflow_uri, "daily_model", result.forecaster_uri, result.run_id, {}
    )
    model_registry.promote(mlflow_uri, version)
    return path, frame, result


def _last_test_window(frame, result):
    """Raw rows the flow's last test window reads, and its forecast (T, K)."""
    forecaster = result.forecaster
    end = len(frame) - HORIZON  # the last window's targets are the last T rows
    rows = frame.iloc[end - forecaster.history_rows : end]
    expected = result.evaluation.forecasts["model"][-1]  # (T, K) original units
    return rows, expected, frame["date"].iloc[end:]


def test_registered_model_forecasts_like_the_flow_in_a_fresh_process_and_over_http(
    trained, mlflow_uri, tmp_path
):
    path, frame, result = trained
    rows, expected, dates = _last_test_window(frame, result)
    rows.to_csv(tmp_path / "latest.csv", index=False)

    done = run_cli(  # a fresh process, from the registry alias
        ["predict", str(path), "--input", str(tmp_path / "latest.csv"), "--json"]
    )  # predict runs no flow: no Prefect server involved
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["model_uri"] == "models:/daily_model@champion"
    forecast = pd.DataFrame(answer["forecast"])
    quantiles = [f"{t}_q{q}" for t in "ab" for q in ("0.025", "0.1", "0.9", "0.975")]
    assert list(forecast.columns) == ["step", "time", "a", "b", *quantiles]
    np.testing.assert_allclose(forecast[["a", "b"]].to_numpy(), expected, rtol=1e-5)
    radii = result.forecaster.calibration.radii  # the 80 % and 95 % intervals
    for k, t in enumerate("ab"):
        for level, low, high in ((0.8, "0.1", "0.9"), (0.95, "0.025", "0.975")):
            half = np.asarray(radii[level])[:, k]  # (T,)
            np.testing.assert_allclose(forecast[f"{t}_q{low}"], forecast[t] - half)
            np.testing.assert_allclose(forecast[f"{t}_q{high}"], forecast[t] + half)
        assert (forecast[f"{t}_q0.025"] < forecast[f"{t}_q0.1"]).all()
    assert list(pd.to_datetime(forecast["time"])) == list(dates)

    port = free_port()
    log_path = tmp_path / "serve.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m",
         "models:/daily_model@champion", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_until_serving(f"http://127.0.0.1:{port}/ping", server, log_path)
        sent = rows.assign(date=rows["date"].astype(str))  # as JSON clients send
        body = {
            "dataframe_split": json.loads(sent.to_json(orient="split", index=False))
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = pd.DataFrame(json.loads(response.read())["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    np.testing.assert_allclose(served[["a", "b"]].to_numpy(), expected, rtol=1e-5)
    assert list(served["step"]) == list(range(1, HORIZON + 1))
    np.testing.assert_allclose(served[quantiles], forecast[quantiles], rtol=1e-5)


def _wait_until_serving(url, server, log_path, seconds=180):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return wait_for(url, 2)
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"mlflow models serve (exit {server.poll()}) did not answer:\n"
                    + log_path.read_text()[-3000:]
                ) from None


def test_pyfunc_takes_datetimes_and_bad_input_is_named(trained, mlflow_uri):
    from components.common.errors import TrackingError
    from components.tracking import packaging

    _, frame, result = trained
    by_run = packaging.load_model(f"runs:/{result.run_id}/forecaster", mlflow_uri)
    rows = frame.iloc[-20:]  # datetimes this time, not strings
    pd.testing.assert_frame_equal(
        by_run.predict(rows), result.forecaster.forecast(rows)
    )
    with pytest.raises(TrackingError, match="models:/missing@champion"):
        packaging.load_model("models:/missing@champion", mlflow_uri)
    forecaster = result.forecaster
    with pytest.raises(DataError, match=r"column.*'b'"):
        forecaster.forecast(frame.drop(columns=["b"]).iloc[-20:])
    short = frame.iloc[-3:]
    with pytest.raises(DataError, match=r"needs the last 9 rows"):
        forecaster.forecast(short)
    gappy = frame.drop(index=frame.index[-5]).iloc[-20:]
    with pytest.raises(DataError, match="gap"):
        forecaster.forecast(gappy)
