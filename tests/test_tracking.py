"""Where runs and artifacts go, and how runs end."""

import pytest
from mlflow import MlflowClient

from components import tracking
from components.config.paths import project_root


def test_default_store_is_the_project_mlruns_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = tracking.resolve_tracking_uri()
    assert uri == f"sqlite:///{project_root() / 'mlruns' / 'mlflow.db'}"
    assert tracking.artifact_root(uri) == project_root() / "mlruns" / "artifacts"


def test_environment_and_config_override_the_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.resolve_tracking_uri() == "http://127.0.0.1:5999"
    assert tracking.resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    assert tracking.artifact_root("http://127.0.0.1:5999") is None


def test_experiment_artifacts_do_not_depend_on_the_current_directory(
    monkeypatch, tmp_path, mlflow_uri
):
    monkeypatch.chdir(tmp_path)
    experiment_id = tracking.ensure_experiment(mlflow_uri, "a/../b name")
    assert tracking.ensure_experiment(mlflow_uri, "a/../b name") == experiment_id
    location = MlflowClient(mlflow_uri).get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "mlruns" / "artifacts" / "a_.._b_name").as_uri()


def test_mlflows_default_experiment_says_where_the_runs_are(mlflow_uri):
    client = MlflowClient(mlflow_uri)
    client.set_experiment_tag("0", "mlflow.note.content", "")
    client.delete_experiment_tag("0", "mlflow.note.content")
    tracking.ensure_experiment(mlflow_uri, "described")
    default = client.get_experiment_by_name("Default")
    assert default.tags["mlflow.note.content"] == tracking.DEFAULT_EXPERIMENT_NOTE
    client.set_experiment_tag("0", "mlflow.note.content", "ours")  # the user's own
    tracking.ensure_experiment(mlflow_uri, "described too")
    assert client.get_experiment("0").tags["mlflow.note.content"] == "ours"


def test_epoch_logger_batches_and_flushes(mlflow_uri):
    run_id = tracking.start_run(mlflow_uri, "e", "r", {})
    hook = tracking.EpochMetricLogger(mlflow_uri, run_id, flush_seconds=3600)
    for epoch in range(1, 6):
        hook(epoch, {"loss": 1.0 / epoch})
    client = MlflowClient(mlflow_uri)
    assert client.get_metric_history(run_id, "loss") == []  # still buffered
    hook.close()
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(e, 1.0 / e) for e in range(1, 6)]


def test_epoch_logger_write_failures_surface_at_close_not_in_training(
    monkeypatch, mlflow_uri
):
    from conftest import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    hook = tracking.EpochMetricLogger(
        f"http://127.0.0.1:{free_port()}", "no-such-run", flush_seconds=0
    )
    for epoch in range(1, 4):
        hook(epoch, {"loss": 1.0})  # each call hands a batch to the writer thread
    with pytest.raises(Exception, match="127.0.0.1"):
        hook.close()


def test_exceptions_end_the_run_failed_with_the_reason(mlflow_uri):
    run_id = tracking.start_run(mlflow_uri, "e", "r", {})
    try:
        with tracking.failing_marks_run(mlflow_uri, run_id):
            raise RuntimeError("disk full")
    except RuntimeError:
        pass
    run = MlflowClient(mlflow_uri).get_run(run_id)
    assert (
        run.info.status == "FAILED"
        and run.data.tags["error"] == "RuntimeError: disk full"
    )


def test_unreachable_server_fails_fast_naming_the_uri(
    prefect_api, series_csv, tmp_path
):
    import socket

    import pytest
    from conftest import write_experiment

    from components.common.errors import TrackingError
    from components.config.loading import load_experiment
    from flows.train import train_flow

    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    experiment = write_experiment(
        tmp_path / "x.yaml",
        f"""
data: {{path: {series_csv}}}
tracking: {{uri: "{uri}"}}
""",
    )
    # raised by rnnflow's own check, not after MLflow's minutes of retries
    with pytest.raises(TrackingError, match=rf"server {uri} is unreachable"):
        train_flow(load_experiment(str(experiment)))


def test_fluent_store_leaves_no_uri_behind_for_later_processes(mlflow_uri, monkeypatch):
    import os

    import mlflow

    from components.tracking.store import fluent_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    before = mlflow.get_tracking_uri()
    with fluent_store(mlflow_uri):
        assert mlflow.get_tracking_uri() == mlflow_uri
        assert mlflow.get_registry_uri() == mlflow_uri
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ  # a subprocess would inherit it
    assert mlflow.get_tracking_uri() == before


def test_runs_logging_the_same_new_dataset_at_once_all_record_it(mlflow_uri):
    """Compare children on Dask workers log one dataset at the same moment; the
    sqlite store's check-then-insert raced into a unique-index error."""
    import threading

    import pandas as pd

    from components import tracking

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    for round_ in range(8):
        runs = [tracking.start_run(mlflow_uri, "race", f"r{i}", {}) for i in range(4)]
        barrier = threading.Barrier(len(runs))
        errors = []

        def log(run_id, name=f"data{round_}"):
            barrier.wait()
            try:
                tracking.log_dataset(mlflow_uri, run_id, frame, name, "x.csv", "d" * 64)
            except Exception as exc:  # collected: the assertion below names it
                errors.append(exc)

        threads = [threading.Thread(target=log, args=(r,)) for r in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        client = MlflowClient(mlflow_uri)
        for run_id in runs:
            (logged,) = client.get_run(run_id).inputs.dataset_inputs
            assert logged.dataset.name == f"data{round_}"
