"""The train flow against a real `mlflow server` on 127.0.0.1, started and
stopped here: runs, metrics, artifacts and the model go over HTTP."""

import subprocess
import sys

import numpy as np
import pytest
from mlflow import MlflowClient

from components.config import load_experiment
from conftest import free_port, wait_for, write_experiment


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            (tmp_path / "server-artifacts").as_uri(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", seconds=120)
        yield f"http://127.0.0.1:{port}", tmp_path / "server-artifacts"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_train_flow_logs_everything_through_a_tracking_server(
    prefect_api, mlflow_server, series_csv, tmp_path
):
    import mlflow.keras

    from flows.train import train_flow

    uri, artifact_store = mlflow_server
    experiment = write_experiment(
        tmp_path / "srv.yaml",
        f"""
data: {{path: {series_csv}}}
split: {{val: 40, test: 40}}
window: {{input_width: 8}}
model: {{kind: gru, units: [4]}}
train: {{epochs: 2}}
tracking: {{uri: "{uri}", experiment: served}}
""",
    )
    result = train_flow(load_experiment(str(experiment)))
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["epochs_trained"] == 2
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [
        1,
        2,
    ]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} >= {
        "plots/loss.png",
        "plots/forecast_a.png",
    }
    assert any(artifact_store.rglob("MLmodel"))  # proxied into the server's store
    from components.tracking import fluent_store

    with fluent_store(uri):
        model = mlflow.keras.load_model(result["model_uri"])
    assert model.predict(np.zeros((1, 8, 2), "float32"), verbose=0).shape == (1, 1, 2)
