"""`rnnflow deploy` against a real `prefect server start` on 127.0.0.1."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, free_port, make_series, wait_for, write_experiment


@pytest.fixture
def prefect_server(tmp_path):
    """A Prefect server of its own (own home and database), stopped after the test."""
    port = free_port()
    home = tmp_path / "prefect_home"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
            f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        ),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(tmp_path / "prefect_server.log", "w")
    server = subprocess.Popen(
        ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(f"{url}/health", 120)
        yield url, env
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_deploy_schedules_retraining_and_a_triggered_run_registers_a_version(
    prefect_server, mlflow_uri, tmp_path
):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, server_env = prefect_server
    data = tmp_path / "series.csv"
    make_series(200).to_csv(data, index=False)
    experiment = write_experiment(
        tmp_path / "nightly.yaml",
        f"""
name: nightly
data: {{path: {data}}}
split: {{test: 40, val: 20}}
window: {{input_width: 12}}
model: {{kind: mlp, units: [16]}}
train: {{epochs: 20, learning_rate: 0.01}}
tracking: {{uri: "{mlflow_uri}"}}
""",
    )
    env = {**server_env, "PREFECT_API_URL": url, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    log = open(tmp_path / "deploy.log", "w")
    deployer = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "deploy", str(experiment),
         "--cron", "0 3 * * *", "--timezone", "Europe/Berlin"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            with get_client(sync_client=True) as client:
                retrain = _wait_for_deployment(
                    client, "rnnflow-retrain-experiment/retrain-nightly", deployer
                )
                train = _wait_for_deployment(
                    client, "rnnflow-train-experiment/train-nightly", deployer
                )
            (schedule,) = retrain.schedules
            assert schedule.schedule.cron == "0 3 * * *"
            assert schedule.schedule.timezone == "Europe/Berlin"
            assert schedule.active
            assert not train.schedules  # triggered by hand only
            assert retrain.parameters["experiment"] == str(experiment.resolve())
            try:
                flow_run = run_deployment(retrain.id, timeout=300)
            finally:
                _unbind_prefect_services()
        assert flow_run.state.is_completed(), (
            flow_run.state,
            (tmp_path / "deploy.log").read_text()[-3000:],
        )
    finally:
        deployer.send_signal(signal.SIGINT)
        try:
            deployer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            deployer.kill()
        log.close()
    registry = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    champion = registry.get_model_version_by_alias("nightly", "champion")
    assert str(champion.version) == "1"
    assert champion.tags["decision"] == "promoted"


def _unbind_prefect_services() -> None:
    """Stop the events and log workers this process started for the deploy
    server while it still answers. They are process-wide and keep the URL they
    started with: left running, they would send later tests' events to the
    stopped server, and `prefect_test_harness` waits for them to drain at the
    end of the session (measured: the xdist worker hung there for minutes)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    EventsWorker.drain_all(timeout=30)
    APILogWorker.drain_all(timeout=30)


def _wait_for_deployment(client, name: str, process, seconds: float = 120):
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + seconds
    while True:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            if process.poll() is not None:
                raise AssertionError(f"rnnflow deploy exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
