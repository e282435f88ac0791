"""Compare: the leaderboard math, and the real flow's parent and child runs."""

import json
import logging

import numpy as np
import pytest
from conftest import child_runs, run_cli, run_cli_here, write_experiment
from mlflow import MlflowClient

from components.common.errors import TrainingError
from components.config.loading import load_experiment
from components.evaluation.leaderboard import build_leaderboard, to_markdown, winner


def _child(model, run_id, mse, persistence=0.5, linear=0.2):
    metrics = {}
    for name, value in [
        ("", mse),
        ("baseline_persistence_", persistence),
        ("baseline_linear_", linear),
    ]:
        for metric in ("mse", "mae", "rmse"):
            metrics[f"{name}test_{metric}"] = value
            metrics[f"{name}test_{metric}_raw"] = 10 * value
    metrics["train_seconds"] = 2.0
    return {"model": model, "run_id": run_id, "metrics": metrics, "parameters": 100}


def test_leaderboard_means_spread_skill_and_order():
    board = build_leaderboard(
        [
            _child("lstm", "a", 0.30),
            _child("lstm", "b", 0.10),
            _child("gru", "c", 0.15),
            _child("gru", "d", 0.15),
        ]
    )
    assert list(board["model"]) == ["gru", "lstm", "linear", "persistence"]
    lstm = board.set_index("model").loc["lstm"]
    assert lstm["test_mse_mean"] == pytest.approx(0.2)
    assert lstm["test_mse_std"] == pytest.approx(0.1414, abs=1e-4)  # sample std
    assert lstm["test_mse_raw_mean"] == pytest.approx(2.0)
    assert lstm["skill_vs_persistence"] == pytest.approx(1 - 0.2 / 0.5)
    assert lstm["run_ids"] == ["a", "b"] and lstm["runs"] == 2
    baseline = board.set_index("model").loc["persistence"]
    assert baseline["test_mse_std"] == 0 and baseline["skill_vs_persistence"] == 0
    assert winner(board) == "gru" and list(board["rank"]) == [1, 2, 3, 4]
    assert "| 2 | lstm | 2 | 0.2000 ± 0.1414 |" in to_markdown(board)
    assert "test_coverage_80_mean" not in board  # the children logged no intervals


def test_the_leaderboard_carries_each_models_interval_scores():
    children = [_child("gru", "a", 0.1), _child("gru", "b", 0.2), _child("mlp", "c", 0.3)]
    for child, coverage in zip(children, (0.7, 0.9, 0.5)):
        child["metrics"].update(
            test_coverage_80=coverage, test_interval_score_80_raw=10 * coverage,
            test_width_80_raw=1.0, test_coverage_80_h2=0.0,
        )  # fmt: skip
    board = build_leaderboard(children).set_index("model")
    assert board.loc["gru", "test_coverage_80_mean"] == pytest.approx(0.8)
    assert board.loc["gru", "test_coverage_80_std"] == pytest.approx(0.1414, abs=1e-4)
    assert board.loc["mlp", "test_interval_score_80_raw_mean"] == pytest.approx(5.0)
    assert "test_coverage_80_h2_mean" not in board  # per-lead scores stay in runs
    assert np.isnan(board.loc["persistence", "test_coverage_80_mean"])


def _experiment(tmp_path, series_csv, mlflow_uri):
    return write_experiment(
        tmp_path / "cmp.yaml",
        f"""
data: {{path: {series_csv}}}
split: {{val: 40, test: 40}}
window: {{input_width: 12}}
model: {{units: [6]}}
train: {{epochs: 3, patience: 0, learning_rate: 0.01}}
tracking: {{uri: "{mlflow_uri}", experiment: cmp}}
""",
    )


def test_compare_flow_nests_children_and_logs_the_leaderboard(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    from flows.compare import compare_flow

    config = load_experiment(
        str(_experiment(tmp_path, series_csv, mlflow_uri)), ["window.horizon=3"]
    )
    seen = logging.Handler()
    seen.emit = lambda record: lines.append(record.getMessage())
    lines, flow_log = [], logging.getLogger("prefect.flow_runs")
    flow_log.addHandler(seen)
    try:
        result = compare_flow(config, ["mlp", "gru"], seeds=2)
    finally:
        flow_log.removeHandler(seen)
    progress = [line for line in lines if line.startswith("[")]
    assert [p.split(":")[0] for p in progress] == [
        "[1/4] mlp · seed 42", "[2/4] mlp · seed 43", "[3/4] gru · seed 42",
        "[4/4] gru · seed 43",
    ]  # fmt: skip
    assert all(" test_mse " in p for p in progress)
    client = MlflowClient(mlflow_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    children = child_runs(client, parent)
    assert sorted(
        (c.data.tags["model_kind"], c.data.params["train.seed"]) for c in children
    ) == [("gru", "42"), ("gru", "43"), ("mlp", "42"), ("mlp", "43")]
    assert all(c.info.status == "FINISHED" for c in children)
    by_model = {}
    for child in children:
        by_model.setdefault(child.data.tags["model_kind"], []).append(
            child.data.metrics["test_mse"]
        )
    board = result.leaderboard
    for row in board:
        if row["kind"] == "model":
            assert row["test_mse_mean"] == pytest.approx(
                sum(by_model[row["model"]]) / 2
            )
    means = [row["test_mse_mean"] for row in board]
    assert means == sorted(means)
    assert {row["model"] for row in board} == {
        "mlp", "gru", "persistence", "linear", "ets", "theta", "arima"
    }  # fmt: skip
    assert parent.data.tags["winner"] == next(
        r["model"] for r in board if r["kind"] == "model"
    )
    # the parent alone compares the models in the UI: one metric per model and number
    for row in board:
        name = row["model"] if row["kind"] == "model" else f"baseline/{row['model']}"
        assert parent.data.metrics[f"{name}/test_mse_mean"] == pytest.approx(
            row["test_mse_mean"]
        )
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    artifacts |= {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {
        "leaderboard.md",
        "leaderboard.csv",
        "config.yaml",
        "plots/leaderboard.png",
        "plots/forecasts_a.png",
        "plots/forecasts_b.png",
        "plots/error_by_lead_time.png",
    } <= artifacts
    child = children[0].data.metrics
    assert {
        "test_mae_h1",
        "test_mae_h2",
        "test_mae_h3",
        "test_mae_raw_h3",
        "baseline/persistence/test_mae_h3",
    } <= set(child)
    assert "test_mae_h4" not in child
    # What the MLflow UI shows: roles, names that start with what differs, the
    # parent's leaderboard as its description, and no single kind or seed on it.
    assert parent.data.tags["rnnflow.role"] == "compare"
    assert parent.data.tags["model_kind"] == "mlp+gru"
    assert "rnnflow.seed" not in parent.data.tags
    assert "model.kind" not in parent.data.params
    assert "train.seed" not in parent.data.params
    assert "| rank |" in parent.data.tags["mlflow.note.content"]
    assert sorted(c.info.run_name for c in children) == [
        "gru · seed 42", "gru · seed 43", "mlp · seed 42", "mlp · seed 43"
    ]  # fmt: skip
    for c in children:
        assert c.data.tags["rnnflow.role"] == "child"
        assert c.data.tags["rnnflow.seed"] == c.data.params["train.seed"]
        assert c.data.tags["mlflow.source.name"].startswith("rnnflow compare ")


def test_compare_with_every_child_failing_fails_the_parent(
    prefect_api, tmp_path, series_csv, mlflow_uri, monkeypatch
):
    from components.training import callbacks
    from flows.compare import compare_flow

    config = load_experiment(str(_experiment(tmp_path, series_csv, mlflow_uri)))
    monkeypatch.setattr(callbacks, "DIVERGENCE_BOUND", 0.0)  # every loss diverges
    with pytest.raises(TrainingError, match="every child training failed"):
        compare_flow(config, ["mlp"], seeds=1)
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("cmp").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED"]
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert "loss diverged at epoch 1" in child.data.tags["error"]


def test_cli_compare_prints_the_leaderboard_and_json(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    path = _experiment(tmp_path, series_csv, mlflow_uri)
    done = run_cli_here(
        [
            "compare",
            str(path),
            "--models",
            "simple_rnn",
            "train.epochs=1",
            "evaluate.backtest.folds=2",
            "--json",
        ]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert any(line.startswith(" * simple_rnn") for line in lines)
    assert "scored on the mean over backtest folds" in done.stdout
    said = done.stdout + done.stderr  # the leaderboard once, no spread of one run
    assert said.count("best network") == 1 and "| rank |" not in said
    assert "± 0.0000" not in said and all(line == line.rstrip() for line in lines)
    result = json.loads(lines[-1])
    assert result["experiment"] == "cmp"
    # The classical baselines are scored in every backtest fold too.
    assert {r["model"] for r in result["leaderboard"]} == {
        "simple_rnn", "persistence", "linear", "ets", "theta", "arima"
    }  # fmt: skip
    assert result["scored_on"] == "mean over backtest folds"
    (network,) = [r for r in result["leaderboard"] if r["kind"] == "model"]
    assert network["model"] == "simple_rnn" and len(network["run_ids"]) == 1
    assert {"test_mse_mean", "test_mse_std", "test_mse_raw_mean"} <= set(network)


def test_cli_compare_rejects_unknown_models():
    done = run_cli(["compare", "gas_furnace", "--models", "lstm,tcn"])
    assert (
        done.returncode == 2 and "`--models`" in done.stderr and "'tcn'" in done.stderr
    )


def test_cli_compare_refuses_a_dask_address_without_the_dask_executor():
    done = run_cli_here(["compare", "gas_furnace", "--dask-address", "tcp://h:8786"])
    assert done.returncode == 2
    assert "`--dask-address` needs `--executor dask`" in done.stderr


def test_lead_time_curves_average_seeds():
    from components.evaluation.leaderboard import lead_time_errors

    def child(model, h1, h2):
        metrics = {"test_mae_h1": h1, "test_mae_h2": h2}
        for b in ("persistence", "linear"):
            metrics.update(
                {
                    f"baseline_{b}_test_mse": 1.0,
                    f"baseline_{b}_test_mae_h1": 1.0,
                    f"baseline_{b}_test_mae_h2": 2.0,
                }
            )
        return {"model": model, "run_id": "r", "metrics": metrics}

    curves = lead_time_errors([child("gru", 0.1, 0.3), child("gru", 0.3, 0.5)])
    assert curves["gru"] == pytest.approx([0.2, 0.4])
    assert curves["persistence"] == [1.0, 2.0] and "seasonal_naive" not in curves
    assert (
        lead_time_errors([{"model": "m", "run_id": "r", "metrics": {"test_mse": 1}}])
        == {}
    )


def test_compare_on_a_local_dask_cluster_trains_every_child_in_a_worker(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    import os

    from flows.compare import run_compare

    config = load_experiment(str(_experiment(tmp_path, series_csv, mlflow_uri)))
    result = run_compare(config, ["mlp", "gru"], seeds=2, executor="dask")
    client = MlflowClient(mlflow_uri)
    parent = client.get_run(result.parent_run_id)
    children = child_runs(client, parent)
    assert parent.info.status == "FINISHED"
    assert sorted(
        (c.data.tags["model_kind"], c.data.params["train.seed"]) for c in children
    ) == [("gru", "42"), ("gru", "43"), ("mlp", "42"), ("mlp", "43")]
    assert all(
        c.info.status == "FINISHED" and "test_mse" in c.data.metrics for c in children
    )
    here = f":{os.getpid()}"
    assert parent.data.tags["rnnflow_worker"].endswith(here)
    workers = {c.data.tags["rnnflow_worker"] for c in children}
    assert not any(w.endswith(here) for w in workers), workers
    board = {row["model"]: row for row in result.leaderboard}
    assert board["mlp"]["runs"] == 2 and board["gru"]["runs"] == 2
    assert sorted(board["gru"]["run_ids"] + board["mlp"]["run_ids"]) == sorted(
        c.info.run_id for c in children
    )
