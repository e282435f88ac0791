"""`rnnflow monitor`: kept forecasts joined with the actuals that arrived,
scored against seasonal naive and the champion's holdout level, and a
retrain started when they drift."""

import numpy as np
import pandas as pd
import pytest

from components.evaluation import monitoring


def _kept() -> pd.DataFrame:
    """Forecasts of two series at origins 5 and 6, two steps each; series b
    was made by a fallback (no interval)."""
    rows = [  # series, origin, step, time, y, y_q0.1, y_q0.9
        ("a", "5", 1, 6, 11.0, 10.0, 13.0),
        ("a", "5", 2, 7, 20.0, 21.0, 23.0),
        ("a", "6", 1, 7, 21.0, 22.5, 23.0),
        ("a", "6", 2, 8, 23.0, 22.0, 24.0),  # time 8 has no actual yet
        ("b", "5", 1, 6, 6.0, np.nan, np.nan),
        ("b", "5", 2, 7, 8.0, np.nan, np.nan),
    ]
    frame = pd.DataFrame(rows, columns=["series", "origin", "step", "time", "y",
                                        "y_q0.1", "y_q0.9"])  # fmt: skip
    return frame.assign(forecaster=np.where(frame["series"] == "a", "network", "naive"))


def _actuals() -> dict:
    times = np.arange(8, dtype=np.float64)
    a = np.array([10, 20, 12, 22, 10, 20, 12, 22], np.float64)[:, None]
    b = np.array([5, 7, 6, 8, 5, 7, 6, 9], np.float64)[:, None]
    return {"a": (times, a), "b": (times, b)}


def test_monitor_figures_match_a_hand_computation():
    rows = monitoring.scored_rows(_kept(), _actuals(), ["y"], season=2, window=20)
    assert len(rows) == 5  # the forecast of time 8 waits for its actual
    # seasonal naive at origin 5 for time 7 (2 ahead) is time 5's 20; for
    # time 6 (1 ahead) time 4's 10; at origin 6 for time 7 again time 5's
    a = rows[rows["series"] == "a"]
    assert list(a["seasonal_naive"]) == [10.0, 20.0, 20.0]
    # scales: mean |y_t - y_t-2| over rows 0..5 (up to the first origin): a 2, b 1
    assert set(a["scale"]) == {2.0} and set(rows.loc[rows["series"] == "b", "scale"]) == {1.0}
    figures = monitoring.summarize(rows)
    m = figures.metrics
    # a: errors 1, 2, 1 -> MASE 4/3 / 2; seasonal naive errors 2, 2, 2 -> 1
    # b: errors 0, 1 -> 0.5; seasonal naive errors 1, 2 -> 1.5
    assert m["monitor_mase"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert m["monitor_seasonal_naive_mase"] == pytest.approx((1 + 1.5) / 2)
    assert m["monitor_mae"] == pytest.approx(5 / 5)
    assert m["monitor_coverage_80"] == pytest.approx(2 / 3)  # b has no interval
    assert m["monitor_skill_vs_seasonal_naive"] == pytest.approx(1 - (7 / 12) / 1.25)
    assert (m["monitor_rows"], m["monitor_series"], m["monitor_origins"]) == (5, 2, 2)
    worst = figures.by_series
    assert list(worst["series"]) == ["a", "b"] and worst["mase"][0] == pytest.approx(2 / 3)
    step = figures.by_series_step.set_index(["series", "step"])
    assert step.loc[("a", 1), "mae"] == pytest.approx(1.0)  # |11-12|, |21-22|
    assert step.loc[("a", 2), "mase"] == pytest.approx(1.0)  # |20-22| / 2
    assert list(figures.by_origin["origin"]) == ["5", "6"]
    assert figures.by_origin["mase"][1] == pytest.approx(0.5)  # a at time 7 only

    recent = monitoring.summarize(
        monitoring.scored_rows(_kept(), _actuals(), ["y"], season=2, window=1)
    )
    assert recent.metrics["monitor_origins"] == 1
    assert recent.metrics["monitor_mase"] == pytest.approx(0.5)


def test_decide_names_each_bound_crossed_and_waits_for_enough_actuals():
    figures = monitoring.summarize(
        monitoring.scored_rows(_kept(), _actuals(), ["y"], season=2, window=20)
    )
    drifted = monitoring.decide(figures, 0.5, 0.1, 0.1, min_rows=5)
    assert drifted.retrain and len(drifted.reasons) == 2
    assert drifted.degradation == pytest.approx((7 / 12) / 0.5 - 1)
    assert "+17%" in drifted.reasons[0] and "max_degradation" in drifted.reasons[0]
    assert "covered 67%" in drifted.reasons[1]
    assert drifted.coverage_error == pytest.approx(0.8 - 2 / 3)
    calm = monitoring.decide(figures, 0.5, 0.5, 0.2, min_rows=5)
    assert not calm.retrain and "+17%" in calm.reasons[0]
    # no holdout level known: judged against seasonal naive on the same rows
    fallback = monitoring.decide(figures, None, 0.1, None, min_rows=5)
    assert not fallback.retrain and "seasonal naive" in fallback.reasons[0]
    waiting = monitoring.decide(figures, 0.5, 0.1, 0.1, min_rows=6)
    assert not waiting.retrain and "not enough actuals" in waiting.reasons[0]


def test_only_the_serving_models_forecasts_are_judged():
    kept = _kept().assign(model_uri="models:/m@champion", model_version="1")
    newer = kept[kept["origin"] == "6"].assign(origin="10", model_version="2")
    rows, model, others = monitoring.by_serving_model(pd.concat([kept, newer]))
    assert model == "models:/m@champion version 2" and others == len(kept)
    assert set(rows["origin"]) == {"10"}
    rows, model, others = monitoring.by_serving_model(kept)
    assert model.endswith("version 1") and others == 0 and len(rows) == len(kept)
    # origins sort as times, not as text ("10" after "9")
    assert max(["9", "10"], key=monitoring.origin_key) == "10"


def test_interval_levels_pair_the_quantile_columns():
    columns = ["y", "y_q0.1", "y_q0.5", "y_q0.9", "y_q0.025", "y_q0.975", "z_q0.1"]
    assert monitoring.interval_levels(columns, "y") == {
        0.8: ("y_q0.1", "y_q0.9"), 0.95: ("y_q0.025", "y_q0.975"),
    }  # fmt: skip


def _drifting_series(n: int = 320, shift_at: int = 200) -> pd.DataFrame:
    """A daily-like season of 24 that doubles and jumps by 4 at `shift_at`."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    y = np.sin(2 * np.pi * t / 24) + 0.05 * rng.standard_normal(n)
    y[shift_at:] = 4 + 2 * y[shift_at:]
    return pd.DataFrame({"y": y})


def drift_experiment(tmp_path, mlflow_uri):
    """(the whole drifting series, its file holding the first 200 rows, an
    experiment `drift` on that file with its forecast store in `tmp_path`)."""
    from conftest import write_experiment

    series, data = _drifting_series(), tmp_path / "data.csv"
    series.iloc[:200].to_csv(data, index=False)
    experiment = write_experiment(tmp_path / "drift.yaml", f"""
name: drift
data: {{path: {data}}}
split: {{test: 40, val: 30}}
window: {{input_width: 24, horizon: 2}}
model: {{kind: mlp, units: [16]}}
train: {{epochs: 30, learning_rate: 0.01}}
evaluate: {{season: 24}}
tracking: {{uri: "{mlflow_uri}"}}
forecast: {{store: {tmp_path / "store"}}}
""")  # fmt: skip
    return series, data, experiment


@pytest.mark.slow
def test_the_loop_monitor_finds_the_drift_and_the_retrain_moves_the_champion(
    prefect_api, tmp_path, mlflow_uri
):
    """Train on the old regime, new rows arrive (held-back rows revealed),
    forecasts are backfilled over them, monitoring finds the error risen
    past its bound and retrains; the gate promotes the new model."""
    import json

    from mlflow import MlflowClient
    from test_forecast import _cli

    from components.serving.forecast_store import ForecastStore

    cli = _cli(prefect_api)
    series, data, experiment = drift_experiment(tmp_path, mlflow_uri)
    first = cli(["retrain", str(experiment), "--json"])
    assert first.returncode == 0, first.stderr[-3000:]
    empty = cli(["monitor", str(experiment)])
    assert empty.returncode != 0 and "holds no forecasts" in empty.stderr
    assert empty.stderr.count("holds no forecasts") == 1  # said once

    series.to_csv(data, index=False)  # 120 new rows arrive, the regime changed
    backfill = cli(["forecast", str(experiment), "--as-of", "200..280", "--json"])
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    kept = ForecastStore(tmp_path / "store").read()
    assert kept["origin"].nunique() == 81 and set(kept["model_version"]) == {"1"}

    monitored = cli(["monitor", str(experiment), "--json"])
    assert monitored.returncode == 0, monitored.stderr[-3000:]
    found = json.loads(monitored.stdout.strip().splitlines()[-1])
    assert found["origins"] == [str(o) for o in range(261, 281)]  # monitor.window 20
    assert found["retrain"] and "max_degradation" in found["reasons"][0]
    assert found["started"].startswith("retrained here: promoted")
    client = MlflowClient(mlflow_uri)
    champion = client.get_model_version_by_alias("drift", "champion")
    assert str(champion.version) == "2"

    run = client.get_run(found["run_id"])
    assert run.data.tags["rnnflow.role"] == "monitor" and run.info.status == "FINISHED"
    assert run.data.tags["decision"] == "retrain"
    logged = {a.path for a in client.list_artifacts(found["run_id"])}
    assert {"error_over_time.png", "coverage_over_time.png", "monitor_rows.parquet",
            "by_series_step.parquet", "by_origin.parquet"} <= logged  # fmt: skip
    # the logged figures follow from the logged rows
    path = client.download_artifacts(found["run_id"], "monitor_rows.parquet", str(tmp_path))
    rows = pd.read_parquet(path)
    mase = ((rows["forecast"] - rows["actual"]).abs() / rows["scale"]).mean()
    assert run.data.metrics["monitor_mase"] == pytest.approx(mase)
    assert run.data.metrics["reference_mase"] == pytest.approx(
        client.get_run(json.loads(first.stdout.strip().splitlines()[-1])["run_id"])
        .data.metrics["test_mase"]
    )
