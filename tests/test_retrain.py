"""Champion/challenger retraining against a real MLflow registry and Prefect API."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import make_series, run_cli_here, write_experiment

from components.common.errors import ConfigError, TrainingError
from components.config.loading import load_experiment
from components.evaluation import gate
from components.evaluation.holdout import Holdout


def test_gate_needs_persistence_beaten_and_the_champion_beaten_by_the_margin():
    assert gate.decide(0.5, 1.0, None).decision == gate.PROMOTED
    beaten_by_persistence = gate.decide(1.0, 0.9, None)
    assert beaten_by_persistence.decision == gate.REJECTED
    assert "persistence" in beaten_by_persistence.reason
    assert gate.decide(0.5, 1.0, 0.6).decision == gate.PROMOTED
    assert gate.decide(0.6, 1.0, 0.6).decision == gate.REJECTED  # a tie keeps it
    short = gate.decide(0.58, 1.0, 0.6, min_improvement=0.05, champion_version="3")
    assert short.decision == gate.REJECTED
    assert "champion v3 0.6" in short.reason and "needed < 0.57" in short.reason
    assert gate.decide(0.56, 1.0, 0.6, min_improvement=0.05).promote


def _experiment(tmp_path, mlflow_uri, rows: int):
    """An MLP experiment on the first `rows` rows of a fixed series (a growing file)."""
    data = tmp_path / "series.csv"
    make_series(260).iloc[:rows].to_csv(data, index=False)
    return write_experiment(
        tmp_path / "exp.yaml",
        f"""
name: retrain_test
data: {{path: {data}}}
split: {{test: 40, val: 20}}
window: {{input_width: 12, horizon: 1}}
model: {{kind: mlp, units: [16]}}
train: {{epochs: 60, learning_rate: 0.01, patience: 10, batch_size: 16}}
tracking: {{uri: "{mlflow_uri}", registered_model: furnace}}
""",
    )


def _registry(mlflow_uri):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_uri, registry_uri=mlflow_uri)


def test_first_promotes_same_data_skips_worse_is_rejected_better_moves_the_alias(
    prefect_api, mlflow_uri, tmp_path
):
    from flows.retrain import retrain_flow

    path = _experiment(tmp_path, mlflow_uri, rows=220)
    # Deliberately weak: 2 epochs from random weights (no linear skip to start from).
    weak = [
        "train.epochs=2",
        "model.skip=none",
        "model.units=[2]",
        "train.learning_rate=0.001",
    ]
    first = retrain_flow(load_experiment(path, weak[:2]))  # a weak champion
    assert first.decision == "promoted", first.reason
    assert (first.version, first.champion_version) == ("1", "1")
    client = _registry(mlflow_uri)
    assert str(client.get_model_version_by_alias("furnace", "champion").version) == "1"

    again = retrain_flow(load_experiment(path, weak[:2]))
    assert again.decision == "skipped" and "no new data" in again.reason
    assert again.version is None
    assert len(client.search_model_versions("name='furnace'")) == 1
    skipped_run = client.get_run(again.run_id)
    assert skipped_run.info.status == "FINISHED"
    assert skipped_run.data.tags["retrain_decision"] == "skipped"

    path = _experiment(tmp_path, mlflow_uri, rows=260)  # 40 new rows arrive
    worse = retrain_flow(load_experiment(path, weak))
    assert worse.decision == "rejected", worse.reason
    version = client.get_model_version("furnace", worse.version)
    assert version.tags["decision"] == "rejected" and version.tags["rejected"] == "true"
    assert float(version.tags["holdout_mse_raw"]) >= float(
        min(version.tags["champion_holdout_mse_raw"],
            version.tags["persistence_holdout_mse_raw"], key=float)
    )  # fmt: skip
    assert str(client.get_model_version_by_alias("furnace", "champion").version) == "1"

    better = retrain_flow(load_experiment(path))
    assert better.decision == "promoted", better.reason
    assert better.champion_version == better.version == "3"
    version = client.get_model_version("furnace", "3")
    assert float(version.tags["holdout_mse_raw"]) < float(
        version.tags["champion_holdout_mse_raw"]
    )
    run = client.get_run(better.run_id)
    assert run.data.tags["retrain_decision"] == "promoted"
    assert run.data.metrics["holdout_mse_raw"] == pytest.approx(
        float(version.tags["holdout_mse_raw"]), rel=1e-5
    )
    assert str(client.get_model_version_by_alias("furnace", "champion").version) == "3"
    # The registry says what the model forecasts, on the model and each version
    config = load_experiment(path)
    assert version.tags["model_kind"] == config.model.kind
    assert version.tags["targets"] and version.tags["targets"] in version.description
    assert version.tags["horizon"] == str(config.window.horizon)
    assert version.description.startswith(f"{config.model.kind} forecasting ")
    assert "promoted: holdout mse" in version.description
    registered = client.get_registered_model("furnace")
    assert "alias `champion`" in registered.description


def _overflowing(build_model):
    """`build_model` with every weight forced to 1e20: forecasts overflow
    float32, so training fails the same way whatever the library versions."""

    def build(*args, **kwargs):
        model = build_model(*args, **kwargs)
        for variable in model.weights:
            variable.assign(np.full(variable.shape, 1e20, variable.dtype))
        return model

    return build


def test_a_failed_retraining_registers_nothing_and_keeps_the_champion(
    prefect_api, mlflow_uri, tmp_path, monkeypatch
):
    import components.training.builder
    from flows.retrain import retrain_flow

    path = _experiment(tmp_path, mlflow_uri, rows=220)
    assert retrain_flow(load_experiment(path, ["train.epochs=5"])).decision == (
        "promoted"
    )
    path = _experiment(tmp_path, mlflow_uri, rows=260)
    monkeypatch.setattr(
        components.training.builder, "build_model", _overflowing(components.training.builder.build_model)
    )
    with pytest.raises(TrainingError, match="non-finite loss at epoch 1"):
        retrain_flow(load_experiment(path, ["model.skip=none"]))
    client = _registry(mlflow_uri)
    assert [str(v.version) for v in client.search_model_versions("name='furnace'")] == [
        "1"
    ]
    assert str(client.get_model_version_by_alias("furnace", "champion").version) == "1"
    failed = client.search_runs(
        [client.get_experiment_by_name("retrain_test").experiment_id],
        "attributes.status = 'FAILED'",
    )
    assert len(failed) == 1 and "non-finite loss" in failed[0].data.tags["error"]


def _backtest(forecast, persistence=2.0):
    actual = np.zeros((3, 1, 1))
    return Holdout(
        pd.RangeIndex(10, 13), actual, np.full_like(actual, forecast),
        np.full_like(actual, persistence),
    )  # fmt: skip


def test_the_gate_fails_a_challenger_with_non_finite_forecasts():
    with pytest.raises(TrainingError, match="the challenger on the holdout from 10"):
        gate.judge(_backtest(np.nan), None)
    decision, metrics = gate.judge(_backtest(1.0), _backtest(np.inf), champion_version="4")
    assert decision.decision == gate.REJECTED
    assert "champion v4 cannot score the new data: 3 of its 3" in decision.reason
    assert all(np.isfinite(v) for v in metrics.values())


def test_a_second_retraining_of_the_same_model_waits_then_skips(
    prefect_api, mlflow_uri, tmp_path
):
    from flows.retrain import _retraining_slot, retrain_flow

    path = _experiment(tmp_path, mlflow_uri, rows=220)
    with _retraining_slot("furnace", 1) as held:  # a retraining in progress
        assert held
        busy = retrain_flow(load_experiment(path, ["retrain.wait_seconds=1"]))
    assert busy.decision == "skipped" and "is running" in busy.reason
    assert busy.run_id is None
    # released again (Prefect frees a slot's lease in the background: under
    # load that took over a second, so this waits up to 10)
    with _retraining_slot("furnace", 10) as held:
        assert held


def test_cli_retrain_prints_the_decision_as_json(prefect_api, mlflow_uri, tmp_path):
    path = _experiment(tmp_path, mlflow_uri, rows=220)
    done = run_cli_here(["retrain", str(path), "train.epochs=5", "--json"])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == {
        "run_id",
        "decision",
        "reason",
        "version",
        "champion_version",
    }
    assert result["decision"] == "promoted" and result["version"] == "1"
    printed = "\n".join(done.stdout.strip().splitlines()[:-1])  # but the --json
    # each line once: the flow's log line says the decision, the CLI what it did
    assert result["reason"] not in printed
    assert (printed + done.stderr).count(result["reason"]) <= 1
    assert f"registered v1, now the champion; run {result['run_id']}" in done.stdout


def _with_interval(backtest: Holdout, half: float) -> Holdout:
    """`backtest` serving the 80 % interval forecast +- half."""
    quantiles = {0.1: backtest.forecast - half, 0.9: backtest.forecast + half}
    return replace(backtest, quantiles=quantiles)


def test_holdout_coverage_by_hand():
    actual = np.zeros((10, 1, 1))
    forecast = np.arange(10.0).reshape(10, 1, 1) / 10  # errors 0.0 .. 0.9
    test = Holdout(pd.Index(range(10)), actual, forecast, actual)
    metrics, miss = gate.holdout_coverage(_with_interval(test, 0.45), None)
    assert metrics == {"holdout_coverage_80": 0.5} and miss is None
    _, miss = gate.holdout_coverage(_with_interval(test, 0.45), 0.2)
    assert "the 80 % interval covers 50% of the holdout" in miss
    assert "`retrain.max_coverage_error` 0.2" in miss
    _, miss = gate.holdout_coverage(_with_interval(test, 0.75), 0.2)  # 80 %: within
    assert miss is None


def test_the_gate_can_compare_quantiles_instead_of_point_errors():
    """Same point forecasts, so MSE ties; the champion's 80 % interval is
    far too wide, so the challenger wins on interval score and wQL."""
    rng = np.random.default_rng(0)
    actual = rng.normal(size=(200, 1, 1))
    point = Holdout(pd.RangeIndex(200), actual, np.zeros_like(actual), actual + 1.0)
    ours, theirs = _with_interval(point, 1.3), _with_interval(point, 6.0)
    tie, _ = gate.judge(ours, theirs, champion_version="2")
    assert tie.decision == gate.REJECTED  # a tie on mse keeps the champion
    for metric in ("interval_score", "wql"):
        decision, metrics = gate.judge(ours, theirs, champion_version="2", metric=metric)
        assert decision.promote, decision.reason
        assert metrics[f"holdout_{metric}_raw"] < metrics[f"champion_holdout_{metric}_raw"]
        assert f"holdout {metric}" in decision.reason and "persistence" in decision.reason
        backwards, _ = gate.judge(theirs, ours, champion_version="2", metric=metric)
        assert backwards.decision == gate.REJECTED
    no_levels = replace(point, quantiles={0.25: point.forecast, 0.75: point.forecast})
    refused, _ = gate.judge(ours, no_levels, champion_version="2", metric="wql")
    assert refused.decision == gate.REJECTED
    assert "retrain.metric=wql needs quantile levels that the models serve" in (
        refused.reason
    )
    serves_nothing = replace(ours, quantiles={})
    alone, _ = gate.judge(serves_nothing, None, metric="interval_score")
    assert alone.decision == gate.REJECTED and "challenger []" in alone.reason
    worse_than_persistence = replace(ours, persistence=actual)
    decision, _ = gate.judge(worse_than_persistence, None, metric="wql")
    assert decision.decision == gate.REJECTED and "persistence" in decision.reason


def test_a_quantile_gate_metric_needs_served_quantiles():
    with pytest.raises(ConfigError, match="retrain.metric: wql"):
        load_experiment("default", ["retrain.metric=wql", "evaluate.intervals=[]"])
    chosen = load_experiment("default", ["retrain.metric=interval_score"])
    assert chosen.retrain.metric == "interval_score"  # the conformal intervals


def test_a_challenger_whose_intervals_miss_is_not_promoted(
    prefect_api, mlflow_uri, tmp_path
):
    from flows.retrain import retrain_flow

    path = _experiment(tmp_path, mlflow_uri, rows=220)
    outcome = retrain_flow(load_experiment(path, ["retrain.max_coverage_error=0.001"]))
    run = _registry(mlflow_uri).get_run(outcome.run_id)
    coverage = {
        level: run.data.metrics[f"holdout_coverage_{name}"]
        for level, name in ((0.8, "80"), (0.95, "95"))
    }
    missed = any(abs(c - level) > 0.001 for level, c in coverage.items())
    assert missed == (outcome.decision == "rejected"), (coverage, outcome)
    if missed:
        assert "`retrain.max_coverage_error` 0.001" in outcome.reason


@pytest.mark.slow
def test_a_warm_start_fine_tunes_the_champions_weights_or_says_why_not(
    prefect_api, mlflow_uri, tmp_path
):
    from flows.retrain import retrain_flow

    path = _experiment(tmp_path, mlflow_uri, rows=200)
    first = retrain_flow(load_experiment(path))
    assert first.decision == "promoted", first.reason
    make_series(260).to_csv(tmp_path / "series.csv", index=False)  # new rows
    warm = ["retrain.warm_start=true", "retrain.warm_epochs=3"]
    again = retrain_flow(load_experiment(path, warm))
    client = _registry(mlflow_uri)
    run = client.get_run(again.run_id)
    assert run.data.tags["warm_start"] == "champion v1"
    assert run.data.metrics["epochs_trained"] <= 3
    assert again.decision in ("promoted", "rejected")  # the same gate decided
    assert "champion_holdout_mse_raw" in run.data.metrics

    make_series(260, seed=1).to_csv(tmp_path / "series.csv", index=False)
    other = retrain_flow(load_experiment(path, [*warm, "model.units=[8]"]))
    tags = client.get_run(other.run_id).data.tags
    assert tags["warm_start"].startswith("no: champion v")  # other shapes: cold start


def test_warm_start_loads_matching_weights_and_keeps_the_built_ones_otherwise(
    prefect_api, mlflow_uri
):
    import keras
    from mlflow import MlflowClient
    from prefect import flow

    from components import tracking
    from components.models.skip import SKIP_LAYER
    from flows.train import warm_start

    def network(width):
        window = keras.Input((4,))
        hidden = keras.layers.Dense(width)(window)
        out = keras.layers.Add()([keras.layers.Dense(1)(hidden),
                                  keras.layers.Dense(1, name=SKIP_LAYER)(window)])  # fmt: skip
        return keras.Model(window, out)

    champion, built = network(3), network(3)
    skip = [w.copy() for w in built.get_layer(SKIP_LAYER).get_weights()]
    run_id = tracking.start_run(mlflow_uri, "warm", "warm", {})

    @flow
    def load(model, source):
        warm_start(model, "champion v7", source, mlflow_uri, run_id)

    load(built, champion)
    for ours, theirs in zip(built.layers[1:3], champion.layers[1:3]):  # the network
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    for kept, now in zip(skip, built.get_layer(SKIP_LAYER).get_weights()):
        np.testing.assert_array_equal(kept, now)  # the fresh linear fit stays
    assert MlflowClient(mlflow_uri).get_run(run_id).data.tags["warm_start"] == "champion v7"
    other = network(5)
    before = [w.copy() for w in other.get_weights()]
    load(other, champion)
    for kept, now in zip(before, other.get_weights()):
        np.testing.assert_array_equal(kept, now)
    tags = MlflowClient(mlflow_uri).get_run(run_id).data.tags
    assert tags["warm_start"] == "no: champion v7 differs"
