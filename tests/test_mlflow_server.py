"""The train flow against a real `mlflow server` on 127.0.0.1, started,
killed, restarted and stopped here: runs, metrics, artifacts and the model go
over HTTP, and a server restart mid-run loses nothing."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from conftest import free_port, wait_for, write_experiment
from mlflow import MlflowClient

from components.config.loading import load_experiment


def _start_server(folder, port) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:`port` over a store in `folder`, in its own
    process group (its workers go down with it)."""
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
            "--workers",
            "1",  # the default 4 workers take 20 s to start on 2 busy cores
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            (folder / "server-artifacts").as_uri(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(f"http://127.0.0.1:{port}/health", seconds=120)
    return process


def _stop_server(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_train_through_a_server_restarted_mid_run_loses_nothing(
    prefect_api, series_csv, tmp_path, monkeypatch
):
    """Kill the server (SIGKILL, whole process group) once epochs are logged,
    bring it back on the same port and store: the run finishes complete.

    MLflow's client retries each request with exponential backoff (7 retries;
    factor 2 by default, 1 here so the test does not idle 30 s after the
    server is back); training goes on meanwhile, epoch metrics queue up.
    """
    import mlflow.keras

    from components.tracking.store import fluent_store
    from flows.train import train_flow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    servers = [_start_server(tmp_path, port)]
    experiment = write_experiment(
        tmp_path / "restart.yaml",
        f"""
data: {{path: {series_csv}}}
split: {{val: 40, test: 40}}
window: {{input_width: 8}}
model: {{kind: gru, units: [4]}}
train: {{epochs: 60, patience: 0, verbose_every: 0}}
tracking: {{uri: "{uri}", experiment: restarted}}
""",
    )
    outage = {}

    def restart_once_epochs_arrive():
        client = MlflowClient(uri)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = client.search_runs(
                [e.experiment_id for e in client.search_experiments()]
            )
            if runs and client.get_metric_history(runs[0].info.run_id, "loss"):
                break
            time.sleep(0.2)
        _stop_server(servers[0])
        time.sleep(2)
        servers.append(_start_server(tmp_path, port))
        outage["up"] = True

    restarter = threading.Thread(target=restart_once_epochs_arrive, daemon=True)
    restarter.start()
    try:
        result = train_flow(load_experiment(str(experiment)))
        restarter.join(timeout=180)
        assert "up" in outage, "the server was never restarted"
        client = MlflowClient(uri)
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED"
        steps = sorted(
            m.step for m in client.get_metric_history(run.info.run_id, "loss")
        )
        assert steps == list(range(1, 61))  # every epoch, before and after
        assert {"test_mse", "epochs_trained", "train_seconds"} <= set(run.data.metrics)
        assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} >= {
            "plots/loss.png",
            "plots/forecast_a.png",
        }
        # Artifacts are proxied into the server's store; the model loads back.
        assert any((tmp_path / "server-artifacts").rglob("MLmodel"))
        with fluent_store(uri):
            model = mlflow.keras.load_model(result.model_uri)
        assert model.predict(np.zeros((1, 8, 2), "float32"), verbose=0).shape == (
            1,
            1,
            2,
        )
    finally:
        for process in servers:
            _stop_server(process)
