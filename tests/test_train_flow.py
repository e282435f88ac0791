"""The training flow end to end: real Prefect API, real MLflow store, real TF."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, make_series, run_cli, run_cli_here, write_experiment
from mlflow import MlflowClient

from components.common.errors import TrainingError
from components.config.loading import load_experiment
from components.data import ingest, preprocess
from components.data.windowing import make_windows
from components.tracking.log import mlflow_metric_name

METRICS = [
    f"{prefix}{name}{unit}"
    for prefix in ("test_", "baseline_persistence_test_", "baseline_linear_test_")
    for name in ("mse", "mae", "rmse")
    for unit in ("", "_raw")
]


def _experiment(tmp_path, series_csv, mlflow_uri, extra=""):
    return write_experiment(
        tmp_path / "small.yaml",
        f"""
data:
  path: {series_csv}
split: {{val: 40, test: 40}}
window: {{input_width: 12, horizon: 2}}
model: {{kind: lstm, units: [8]}}
train: {{epochs: 6, patience: 0, learning_rate: 0.01}}
tracking: {{uri: "{mlflow_uri}", experiment: flow-test}}
{extra}
""",
    )


@pytest.fixture(scope="module")
def finished(prefect_api, tmp_path_factory):
    """One small training shared by the read-only checks below."""
    from flows.train import train_flow

    folder = tmp_path_factory.mktemp("finished")
    series_csv = folder / "series.csv"
    make_series().to_csv(series_csv, index=False)
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    config = load_experiment(
        str(_experiment(folder, series_csv, uri, extra="evaluate: {season: 12}"))
    )
    return config, train_flow(config)


def test_the_run_explains_itself_in_the_mlflow_ui(finished):
    config, result = finished
    client = MlflowClient(config.tracking.uri)
    run = client.get_run(result.run_id)
    tags, metrics = run.data.tags, run.data.metrics
    note = tags["mlflow.note.content"]
    assert note.startswith("**lstm** on ")
    assert f"model {metrics['test_mae_raw']:.4g}" in note
    assert f"persistence {metrics['baseline/persistence/test_mae_raw']:.4g}" in note
    # baselines fold into their own chart sections; results keep their keys
    assert not [m for m in metrics if m.startswith("baseline_")]
    assert {"baseline/linear/test_mse", "baseline/arima/seconds"} <= set(metrics)
    assert "baseline_linear_test_mse" in result.metrics
    assert tags["rnnflow.role"] == "train"
    assert tags["rnnflow.seed"] == str(config.train.seed)
    assert tags["mlflow.source.name"] == f"rnnflow train {config.name}"
    assert tags["mlflow.user"]
    assert run.info.run_name == f"lstm · {config.name}"
    # the kept weights' validation loss, not the last epoch's
    history = client.get_metric_history(result.run_id, "val_loss")
    best = int(metrics["best_epoch"])
    assert metrics["best_val_loss"] == pytest.approx(
        sorted(history, key=lambda m: m.step)[best - 1].value
    )
    # the run comparison page shows images logged under a key, the same for
    # every run (files in plots/ it never shows)
    images = {a.path.split("/")[1].split("+")[0]
              for a in client.list_artifacts(result.run_id, "images")}  # fmt: skip
    assert {"loss", "forecast_a", "forecast_b"} <= images
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "forecasting"
    # the saved runs view the printed link opens: the deciding metrics, sorted
    view = json.loads(experiment.tags["mlflow.sharedViewState.rnnflow"])
    state = json.loads(view["state"])
    assert state["orderByKey"] == "metrics.`test_mse`" and state["orderByAsc"] is True
    shown = [key.removeprefix("metrics.`").removesuffix("`") for key in state["selectedColumns"]]
    assert shown[:4] == ["test_mse", "test_mase", "test_smape", "baseline/persistence/test_mse"]
    assert {"test_coverage_80", "test_coverage_95"} <= set(shown) <= set(metrics)
    assert "rnnflow.role" in experiment.tags["mlflow.note.content"]
    assert result.experiment_id == run.info.experiment_id


def test_run_holds_params_metrics_artifacts_and_tags(finished):
    config, result = finished
    client = MlflowClient(config.tracking.uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and result.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "flow-test"
    params = run.data.params
    assert params["model.kind"] == "lstm" and params["window.input_width"] == "12"
    assert params["rows.train"] == "160" and params["data.path"] == config.data.path
    assert (
        params["precision_policy"] == "float32" and params["train.precision"] == "auto"
    )
    for name in METRICS + ["train_seconds", "epochs_trained"]:
        logged = run.data.metrics[mlflow_metric_name(name)]
        assert math.isfinite(logged), name
        assert logged == pytest.approx(result.metrics[name])
    loss = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in loss] == [1, 2, 3, 4, 5, 6]
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 6
    tags = run.data.tags
    assert tags["model_kind"] == "lstm" and len(tags["data_sha256"]) == 64
    import keras
    import tensorflow as tf

    assert params["versions.tensorflow"] == tf.__version__
    assert params["versions.keras"] == keras.__version__
    assert {"versions.prefect", "versions.mlflow", "versions.pandas"} <= set(params)
    if (REPO / ".git").exists():  # a git checkout: the commit it ran from
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert tags["mlflow.source.git.commit"] == head
        assert tags["git_dirty"] in ("true", "false")
    artifacts = _artifact_paths(client, run.info.run_id)
    for name in [
        "config.yaml",
        "normalizer.json",
        "plots/loss.png",
        "plots/forecast_a.png",
        "plots/forecast_b.png",
    ]:
        assert name in artifacts, artifacts


def test_seasonal_naive_baseline_by_hand(finished):
    config, result = finished
    test = pd.read_csv(config.data.path).iloc[-40:].to_numpy()  # the test split
    starts = np.arange(40 - 12 - 2 + 1)  # input_width 12, horizon 2
    errors = [test[starts + 11 + h] - test[starts + h - 1] for h in (1, 2)]  # season 12
    expected = float(np.mean(np.square(errors)))
    metrics = result.metrics
    assert metrics["baseline_seasonal_naive_test_mse_raw"] == pytest.approx(expected)
    assert "baseline_seasonal_naive_test_mae_h2" in metrics


def test_run_links_to_a_completed_prefect_flow_run(finished):
    from prefect import get_client

    config, result = finished
    flow_run_id = (
        MlflowClient(config.tracking.uri)
        .get_run(result.run_id)
        .data.tags["prefect_flow_run_id"]
    )
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    assert flow_run.state.is_completed()
    assert flow_run.name == "small-lstm"


def test_normalizer_artifact_holds_training_statistics(finished):
    config, result = finished
    stats = MlflowClient(config.tracking.uri).download_artifacts(
        result.run_id, "normalizer.json"
    )
    logged = json.loads(Path(stats).read_text())
    frame = ingest.load_series(config.data).frame
    train = frame.iloc[:160]
    assert logged["a"]["mean"] == pytest.approx(train["a"].mean())
    assert logged["b"]["std"] == pytest.approx(train["b"].std(ddof=0))


def test_logged_keras_model_reproduces_the_test_mse(finished):
    import mlflow.keras

    from components.tracking.store import fluent_store

    config, result = finished
    series = ingest.load_series(config.data)
    splits = preprocess.split_chronologically(series.frame, config.split)
    normalizer = preprocess.fit_normalizer(splits.train)
    test = preprocess.scale_split(
        preprocess.prepare_split(splits.test, config.data, series.targets),
        normalizer,
        series.features,
        series.targets,
    )
    x, y = make_windows(test.inputs, test.targets, config.window)
    with fluent_store(config.tracking.uri):  # a fresh process: test_serving.py
        model = mlflow.keras.load_model(result.model_uri)
    predictions = model.predict(x, verbose=0)
    assert predictions.shape == y.shape == (len(x), 2, 2)
    mse = float(np.mean((predictions.astype(np.float64) - y) ** 2))
    assert mse == pytest.approx(result.metrics["test_mse"], rel=1e-5)


def test_failure_after_the_run_opens_marks_it_failed(
    prefect_api, tmp_path, series_csv, mlflow_uri, monkeypatch
):
    from components.training import callbacks
    from flows.train import train_flow

    path = _experiment(tmp_path, series_csv, mlflow_uri)
    config = load_experiment(str(path), ["model.kind=mlp"])
    monkeypatch.setattr(callbacks, "DIVERGENCE_BOUND", 0.0)  # every loss diverges
    with pytest.raises(TrainingError, match="loss diverged at epoch 1"):
        train_flow(config)
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("flow-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED" and run.info.end_time is not None
    assert "loss diverged at epoch 1" in run.data.tags["error"]


def test_gas_furnace_lstm_beats_the_course_notebook(prefect_api, cache_dir, mlflow_uri):
    from flows.train import train_flow

    config = load_experiment("gas_furnace", [f"tracking.uri={mlflow_uri}"])
    metrics = train_flow(config).metrics
    # The course notebook's LSTM: 0.583 in original units (trained on raw data).
    assert math.isfinite(metrics["test_mse_raw"]) and metrics["test_mse_raw"] < 0.583
    # Sanity of the baselines on the course split (numbers from the issue).
    assert metrics["baseline_persistence_test_mse_raw"] == pytest.approx(
        0.321, abs=0.002
    )


def test_cli_bad_data_fails_before_anything_is_logged(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    path = _experiment(tmp_path, series_csv, mlflow_uri)
    done = run_cli_here(["train", str(path), "data.targets=[CO2]"])
    assert done.returncode == 2
    assert "error:" in done.stderr and "'CO2'" in done.stderr
    assert str(series_csv) in done.stderr and "Traceback" not in done.stderr
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("flow-test")
    assert experiment is None or not client.search_runs([experiment.experiment_id])


def _artifact_paths(client, run_id, path=None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= _artifact_paths(client, run_id, item.path)
        else:
            found.add(item.path)
    return found


def test_default_experiment_runs_offline_from_any_directory(
    prefect_api, tmp_path, mlflow_uri
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_cli(
        ["train", "train.epochs=2", "--json"],
        env={"PREFECT_API_URL": prefect_api, "MLFLOW_TRACKING_URI": mlflow_uri},
        cwd=elsewhere,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # TensorFlow's C++ start-up notices and Prefect's engine notices stay off
    # the terminal; what was loaded, the model and its training stay on it
    printed = done.stderr + done.stdout
    for notice in ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub",
                   "Finished in state", "temporary server", "| INFO", "ERROR"):  # fmt: skip
        assert notice not in printed, notice
    for line in ("loaded statsmodels:sunspots: 309 rows", "built gru", "epoch 2/2"):
        assert line in printed, line
    result = json.loads(done.stdout.strip().splitlines()[-1])  # --json: last line
    assert result["experiment"] == "default" and result["status"] == "FINISHED"
    assert set(METRICS) <= set(result["metrics"])
    client = MlflowClient(mlflow_uri)
    run = client.get_run(result["run_id"])
    assert (
        run.data.metrics["epochs_trained"] == result["metrics"]["epochs_trained"] == 2
    )
    assert run.data.tags["data_source"] == "statsmodels:sunspots"
    # artifacts sit beside the store, not in the current directory
    assert run.info.artifact_uri.startswith(
        (tmp_path / "mlruns" / "artifacts").as_uri()
    )
    assert (
        not (elsewhere / "mlruns").exists() and not (elsewhere / "mlflow.db").exists()
    )


def test_verbose_shows_prefects_own_log(prefect_api, tmp_path, mlflow_uri):
    done = run_cli(
        ["train", "train.epochs=1", "evaluate.classical=[]"],
        env={"PREFECT_API_URL": prefect_api, "MLFLOW_TRACKING_URI": mlflow_uri,
             "RNNFLOW_VERBOSE": "1"},  # fmt: skip
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Finished in state Completed()" in done.stderr
    assert "| INFO    | Task run 'load_data" in done.stderr


def test_differenced_run_reports_original_units(prefect_api, tmp_path, mlflow_uri):
    from flows.train import train_flow

    trend = make_series(200).assign(b=lambda f: f["b"] + 0.5 * np.arange(200))
    path = tmp_path / "trend.csv"
    trend.to_csv(path, index=False)
    config = load_experiment(
        str(_experiment(tmp_path, path, mlflow_uri)),
        [
            "data.transform=diff",
            "window.horizon=3",
            "train.epochs=2",
        ],
    )
    metrics = train_flow(config).metrics
    # persistence in original units, by hand: the last observed level, repeated
    test = trend.iloc[-40:].to_numpy()[1:]  # the test split loses one row to diff
    starts = np.arange(len(test) - 12 - 3 + 1)
    last = test[starts + 11][:, None, :]
    actual = test[starts[:, None] + 12 + np.arange(3)]
    expected = float(np.mean((actual - last) ** 2))
    assert metrics["baseline_persistence_test_mse_raw"] == pytest.approx(expected)
    assert math.isfinite(metrics["test_mse_raw"])


def test_separate_inputs_and_targets_with_calendar_features(
    prefect_api, tmp_path, mlflow_uri
):
    from flows.train import train_flow

    frame = make_series(240)
    frame.insert(
        0,
        "when",
        pd.date_range("2024-01-01", periods=240, freq="h").strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
    )
    path = tmp_path / "hourly.csv"
    frame.to_csv(path, index=False)
    config = load_experiment(
        str(_experiment(tmp_path, path, mlflow_uri)),
        [
            "data.time_column=when",
            "data.features=[a]",
            "data.targets=[b]",
            "data.calendar=[hour]",
            "train.epochs=2",
        ],
    )
    result = train_flow(config)
    run = MlflowClient(mlflow_uri).get_run(result.run_id)
    assert run.data.params["features"] == "['a', 'hour_sin', 'hour_cos']"
    assert run.data.params["targets"] == "['b']"
    assert run.data.params["data.frequency_found"] == "h"
    assert "plots/forecast_b.png" in _artifact_paths(
        MlflowClient(mlflow_uri), run.info.run_id
    )


def test_same_config_and_seed_twice_gives_identical_weights_and_metrics(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    from flows.train import train_flow

    config = load_experiment(
        str(_experiment(tmp_path, series_csv, mlflow_uri)),
        ["model.kind=gru", "model.dropout=0.1", "train.deterministic=true"],
    )
    first, second = train_flow(config), train_flow(config)
    assert first.run_id != second.run_id
    measured = {k: v for k, v in first.metrics.items() if k != "train_seconds"}
    assert measured == {k: second.metrics[k] for k in measured}  # bit-identical
    for a, b in zip(
        first.forecaster.model.get_weights(),
        second.forecaster.model.get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_sigterm_during_training_ends_the_run_killed_with_its_metrics(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    import os
    import signal

    path = _experiment(tmp_path, series_csv, mlflow_uri)
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "train", str(path),
         "train.epochs=100000", "train.verbose_every=1"],
        env={**os.environ, "PREFECT_API_URL": prefect_api}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen = []
    for line in process.stdout:  # wait until training is under way
        seen.append(line)
        if "epoch 3/100000" in line:
            break
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=120)
    # Prefect marks its flow run Crashed, then lets SIGTERM end the process.
    assert process.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), rest
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("flow-test").experiment_id]
    )
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert "TerminationSignal" in run.data.tags["error"]
    assert len(client.get_metric_history(run.info.run_id, "loss")) >= 3  # flushed
    # The checkpoint holds epoch 2 at least (epoch 3 had begun): a rerun resumes.
    from components import tracking

    (state_file,) = tracking.checkpoint_root(mlflow_uri).glob("*/state.json")
    state = json.loads(state_file.read_text())
    assert state["epoch"] >= 2 and state["run_id"] == run.info.run_id


def test_live_progress_keeps_one_line_and_times_from_the_second_epoch():
    import io

    from flows.terminal import LiveProgress

    now, out = [0.0], io.StringIO()
    progress = LiveProgress(out, 10, clock=lambda: now[0])
    for epoch, seconds in ((1, 5.0), (2, 1.0), (3, 1.0)):  # the first traces
        now[0] += seconds
        progress(epoch, {"loss": 0.5, "val_loss": 0.25})
    progress.close()
    lines = out.getvalue().split("\r\x1b[2K")[1:]
    assert lines[0] == "epoch  1/10  loss 0.5000  val_loss 0.2500"
    assert lines[2] == "epoch  3/10  loss 0.5000  val_loss 0.2500  at most 7 s left"
    assert lines[3] == ""  # closed: the line is erased, nothing stale is left


def test_an_ensemble_is_one_model_forecasting_the_median_of_its_members(
    prefect_api, tmp_path, mlflow_uri
):
    """`model.ensemble: 3`: three members (seeds 42, 43, 44) trained on the
    same windows, each scored and its curve logged, joined into one logged
    and served model whose forecast is the element-wise median of theirs."""
    import keras

    from components.models import predict_all
    from components.tracking.packaging import load_forecaster
    from flows.train import train_flow

    path = tmp_path / "series.csv"
    make_series().to_csv(path, index=False)
    config = load_experiment(
        str(_experiment(tmp_path, path, mlflow_uri)),
        ["model.ensemble=3", "train.epochs=3", "model.kind=gru"],
    )
    result = train_flow(config)
    metrics = MlflowClient(mlflow_uri).get_run(result.run_id).data.metrics
    for i in range(3):
        assert math.isfinite(metrics[f"member_{i}_test_mse"])
    assert {"member_1/loss", "member_2/val_loss"} <= set(metrics)
    members = [metrics[f"member_{i}_test_mse"] for i in range(3)]
    assert len(set(members)) == 3  # three different networks
    served = load_forecaster(result.forecaster_uri, mlflow_uri)
    model = served.model
    assert [layer.name for layer in model.layers[1:4]] == ["member_0", "member_1", "member_2"]
    x = np.random.default_rng(0).normal(size=(16, 12, 2)).astype("float32")
    each = np.stack([predict_all(member, x) for member in model.layers[1:4]])
    np.testing.assert_allclose(predict_all(model, x), np.median(each, axis=0), rtol=1e-6)
    assert isinstance(model.layers[1], keras.Model)
