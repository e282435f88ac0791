"""`rnnflow server`: a real warm server process runs CLI commands sent by the
real `rnnflow` client, in the client's directory and with its environment."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from mlflow import MlflowClient

from conftest import REPO, run_cli, write_experiment


def test_the_client_runs_commands_on_a_running_server_then_it_stops_cleanly(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    state = tmp_path / "state"
    env = {
        **os.environ,
        "RNNFLOW_STATE_DIR": str(state),
        "PREFECT_API_URL": prefect_api,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "server"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not (state / "server.json").exists():
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "no server.json within 180 s"
            time.sleep(0.5)
        info = json.loads((state / "server.json").read_text())
        assert info["url"].startswith("http://127.0.0.1:") and info["pid"] == server.pid
        assert (state / "server.json").stat().st_mode & 0o077 == 0  # token: owner only
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{info['url']}/health", timeout=5)  # no token
        assert refused.value.code == 403

        work = tmp_path / "work"
        work.mkdir()
        write_experiment(
            work / "exp.yaml",
            f"data: {{path: {series_csv}}}\nmodel: {{kind: mlp, units: [4]}}\n"
            "train: {epochs: 2}\n",
        )
        client_env = {
            "RNNFLOW_LOCAL": "",
            "RNNFLOW_STATE_DIR": str(state),
            "MLFLOW_TRACKING_URI": mlflow_uri,
            "PREFECT_API_URL": "",  # the client needs no Prefect: the server has one
        }
        # A relative path and the store from the environment: both the client's.
        done = run_cli(["train", "exp.yaml", "--json"], env=client_env, cwd=work)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"(running on rnnflow server {info['url']})" in done.stderr
        assert "built mlp + linear skip" in done.stderr  # the run's log, streamed
        result = json.loads(done.stdout.strip().splitlines()[-1])
        run = MlflowClient(mlflow_uri).get_run(result["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags["rnnflow_worker"].endswith(f":{server.pid}")

        missing = run_cli(["train", "nope.yaml"], env=client_env, cwd=work)
        assert (
            missing.returncode == 2 and "'nope.yaml' does not exist" in missing.stderr
        )
        local = run_cli(
            ["--local", "train", "nope.yaml"], env=client_env, cwd=work
        )  # --local: answered here, not by the server
        assert local.returncode == 2 and "rnnflow server" not in local.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output[-3000:]
    assert not (state / "server.json").exists()


def test_a_prefect_server_already_running_is_found_on_its_port(prefect_api):
    from urllib.parse import urlsplit

    from flows.server import find_prefect_api

    port = urlsplit(prefect_api).port
    assert find_prefect_api(port) == f"http://127.0.0.1:{port}/api"
    with socket.socket() as sock:  # a port nobody answers on
        sock.bind(("127.0.0.1", 0))
        assert find_prefect_api(sock.getsockname()[1]) is None
