"""Backtests: where folds lie, that each fold refits its own normalizer on its
own earlier rows, that folds are cached, and that the leaderboard ranks by them."""

import re

import numpy as np
import pandas as pd
import pytest
from conftest import make_series, run_cli_here, write_experiment
from mlflow import MlflowClient

from components.common.errors import DataError
from components.config.loading import load_experiment
from components.config.schema import BacktestSpec, SplitSpec, WindowSpec
from components.evaluation.backtest import plan_folds, summarize
from components.evaluation.leaderboard import build_leaderboard, scored_on


def test_expanding_folds_end_at_the_test_split_and_never_overlap_their_test():
    folds = plan_folds(
        296, SplitSpec(val=30, test=100), BacktestSpec(folds=3, step=50), WindowSpec()
    )
    assert [f.ranges() for f in folds] == [
        {
            "fold": 0,
            "train_start": 0,
            "train_stop": 66,
            "test_start": 96,
            "test_stop": 196,
        },
        {
            "fold": 1,
            "train_start": 0,
            "train_stop": 116,
            "test_start": 146,
            "test_stop": 246,
        },
        {
            "fold": 2,
            "train_start": 0,
            "train_stop": 166,
            "test_start": 196,
            "test_stop": 296,
        },
    ]


def test_sliding_folds_keep_the_first_folds_length_and_step_defaults_to_test():
    folds = plan_folds(
        300,
        SplitSpec(val=20, test=40),
        BacktestSpec(folds=4, window="sliding"),
        WindowSpec(input_width=10),
    )
    assert [(f.start, f.test_start, f.stop) for f in folds] == [
        (0, 140, 180),
        (40, 180, 220),
        (80, 220, 260),
        (120, 260, 300),
    ]
    assert len({f.stop - f.start for f in folds}) == 1


def test_folds_that_leave_no_room_to_train_are_refused_by_key():
    with pytest.raises(DataError, match=r"evaluate\.backtest\.folds.*\(6\).*step"):
        plan_folds(
            296,
            SplitSpec(val=30, test=100),
            BacktestSpec(folds=6, step=50),
            WindowSpec(),
        )
    assert plan_folds(296, SplitSpec(), BacktestSpec(folds=1), WindowSpec()) == []


def test_summary_is_the_mean_and_sample_std_of_what_every_fold_reports():
    summary = summarize(
        [{"test_mse": 0.1, "only_here": 1.0}, {"test_mse": 0.3}, {"test_mse": 0.2}]
    )
    assert summary == pytest.approx(
        {"backtest_test_mse_mean": 0.2, "backtest_test_mse_std": 0.1}
    )


def test_leaderboard_ranks_backtested_runs_by_their_fold_means():
    def child(model, run_id, test_mse, fold_mean):
        metrics = {}
        for prefix, value, mean in [
            ("", test_mse, fold_mean),
            ("baseline_persistence_", 0.5, 0.6),
            ("baseline_linear_", 0.2, 0.25),
        ]:
            for metric in ("mse", "mae", "rmse", "mse_raw", "mae_raw", "rmse_raw"):
                metrics[f"{prefix}test_{metric}"] = value
                metrics[f"backtest_{prefix}test_{metric}_mean"] = mean
        return {"model": model, "run_id": run_id, "metrics": metrics}

    # gru wins on the test split but loses over the folds.
    children = [child("gru", "a", 0.10, 0.40), child("lstm", "b", 0.15, 0.12)]
    board = build_leaderboard(children).set_index("model")
    assert scored_on(children) == "backtest"
    assert board.loc["lstm", "rank"] == 1 and board.loc["gru", "rank"] == 3
    assert board.loc["persistence", "test_mse_mean"] == 0.6
    assert board.loc["lstm", "skill_vs_persistence"] == pytest.approx(1 - 0.12 / 0.6)


def _artifact_csv(client, run_id, path) -> pd.DataFrame:
    local = client.download_artifacts(run_id, path)
    return pd.read_csv(local)


def test_a_three_fold_backtest_refits_normalization_per_fold_and_is_cached(
    prefect_api, tmp_path, mlflow_uri
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
    from prefect.client.schemas.sorting import TaskRunSort

    from flows.train import train_flow

    frame = make_series(n=240, seed=3)
    frame["a"] += np.linspace(0, 4, len(frame))  # a trend: every fold's mean differs
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    experiment = write_experiment(
        tmp_path / "bt.yaml",
        f"""
data: {{path: {path}}}
split: {{val: 20, test: 40}}
window: {{input_width: 8}}
model: {{kind: mlp, units: [8]}}
train: {{epochs: 2, patience: 0, learning_rate: 0.01}}
evaluate: {{backtest: {{folds: 3, step: 30}}}}
tracking: {{uri: "{mlflow_uri}", experiment: bt}}
""",
    )
    config = load_experiment(str(experiment))
    result = train_flow(config)
    client = MlflowClient(mlflow_uri)
    table = _artifact_csv(client, result.run_id, "backtest.csv")

    assert list(table["fold"]) == [0, 1, 2]
    assert list(table["test_stop"]) == [180, 210, 240]
    assert (table["train_stop"] + 20 == table["test_start"]).all()
    for _, row in table.iterrows():  # statistics of the fold's training rows only
        rows = frame.iloc[int(row["train_start"]) : int(row["train_stop"])]
        assert row["mean.a"] == pytest.approx(rows["a"].mean())
        assert row["std.a"] == pytest.approx(rows["a"].std(ddof=0))
    assert table["mean.a"].is_monotonic_increasing and table["mean.a"].nunique() == 3
    # The last fold is the run's own split: same statistics and test MSE.
    normalizer = client.download_artifacts(result.run_id, "normalizer.json")
    assert pd.read_json(normalizer)["a"]["mean"] == pytest.approx(
        table["mean.a"].iloc[-1]
    )
    metrics = result.metrics
    assert table["test_mse"].iloc[-1] == pytest.approx(metrics["test_mse"])
    assert metrics["backtest_test_mse_mean"] == pytest.approx(table["test_mse"].mean())
    assert metrics["backtest_folds"] == 3
    history = client.get_metric_history(result.run_id, "backtest_fold_test_mse")
    assert sorted(m.step for m in history) == [0, 1, 2]
    plots = [a.path for a in client.list_artifacts(result.run_id, "plots")]
    assert "plots/backtest.png" in plots

    done = run_cli_here(["train", str(experiment)])  # the same settings again
    assert done.returncode == 0, done.stderr[-3000:]
    assert "backtest, 3 folds, mse: model " in done.stdout
    again_run = re.search(r"^run (\w+) \(FINISHED\)", done.stdout, re.M).group(1)
    again_table = _artifact_csv(client, again_run, "backtest.csv")
    pd.testing.assert_frame_equal(
        table.drop(columns=["train_seconds"]).iloc[:2],
        again_table.drop(columns=["train_seconds"]).iloc[:2],
    )
    assert (
        again_table["train_seconds"].iloc[:2].tolist()
        == table["train_seconds"].iloc[:2].tolist()
    )  # the cached result, not a new training
    with get_client(sync_client=True) as client_api:
        runs = client_api.read_task_runs(
            task_run_filter=TaskRunFilter(
                name=TaskRunFilterName(any_=["backtest-fold-0", "backtest-fold-1"])
            ),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=50,
        )
    states = sorted(r.state.name for r in runs)
    assert states.count("Cached") >= 2 and states.count("Completed") >= 2, states


def test_bad_backtest_settings_fail_before_any_run_is_opened(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    from flows.train import train_flow

    experiment = write_experiment(
        tmp_path / "bad.yaml",
        f"""
data: {{path: {series_csv}}}
split: {{val: 20, test: 40}}
evaluate: {{backtest: {{folds: 9}}}}
tracking: {{uri: "{mlflow_uri}", experiment: bad}}
""",
    )
    with pytest.raises(DataError, match=r"evaluate\.backtest\.folds` \(9\)"):
        train_flow(load_experiment(str(experiment)))
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("bad")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
