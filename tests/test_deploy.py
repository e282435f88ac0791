"""`rnnflow deploy`: retrain, forecast and monitor deployments on a Prefect
server and worker that outlive the command, closing the loop for real:
rnnflow's own Prefect server on 127.0.0.1, a process worker, a cron that
fires within the test, MLflow and the forecast store on disk."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from conftest import free_port, run_cli, wait_for
from test_monitor import drift_experiment

# TensorFlow's C++ start-up notices (flows/terminal.py `_TF_NOTICE`)
TF_NOTICES = ("oneDNN custom operations", "absl::InitializeLog", "cuda drivers")


def _api(api: str, path: str, body: dict | None = None, tries: int = 5):
    """One call to the Prefect REST API (no Prefect client in this process:
    its background event and log workers would outlive the server). A 503 is
    the server's "sqlite is busy, try again": retried with backoff, as
    Prefect's own client does (PREFECT_CLIENT_MAX_RETRIES, 5)."""
    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body or {}).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            if error.code != 503 or attempt == tries - 1:
                raise
            time.sleep(2**attempt)


def _runs(api: str, deployment_id: str) -> list[dict]:
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
    return _api(api, "/flow_runs/filter", body)


def _wait_until(found, seconds: float, what: str, log):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"{what} within {seconds} s; worker log:\n{log.read_text()[-4000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our zombie child
        os.kill(pid, 0)
    except ChildProcessError:
        return True  # not our child, and it exists
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_deployments_outlive_the_command_and_close_the_loop(tmp_path, mlflow_uri):
    state = tmp_path / "state"
    env = {
        "RNNFLOW_STATE_DIR": str(state),
        "RNNFLOW_PREFECT_PORT": str(free_port()),
        "PREFECT_API_URL": "",  # none given: rnnflow's own lasting server is used
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }

    def cli(*args):
        done = run_cli(list(args), env=env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done

    started = cli("prefect", "start")
    api = f"http://127.0.0.1:{env['RNNFLOW_PREFECT_PORT']}/api"
    assert api.removesuffix("/api") in started.stdout
    try:
        wait_for(f"{api}/health", 5)
        # its own database, not ~/.prefect's: `prefect server start` beside it
        # (port 4200, its own home) shares nothing with it
        assert (state / "prefect" / "prefect.db").is_file()

        series, data, experiment = drift_experiment(tmp_path, mlflow_uri)
        cli("--local", "retrain", str(experiment))
        # it ran on the lasting server (a temporary one would have kept nothing)
        flows = {f["id"]: f["name"] for f in _api(api, "/flows/filter")}
        runs = _api(api, "/flow_runs/filter")
        assert "rnnflow-retrain" in {flows[r["flow_id"]] for r in runs}

        series.to_csv(data, index=False)  # new rows arrive
        deployed = cli("deploy", str(experiment), "--cron", "0 3 * * 0",
                       "--forecast-cron", "* * * * *", "--monitor-cron", "0 7 * * *")  # fmt: skip
        assert "rnnflow-forecast-experiment/forecast-drift: * * * * * (UTC)" in deployed.stdout
        # the command has returned: the deployments and their schedules stay
        found = {d["name"]: d for d in _api(api, "/deployments/filter")}
        assert set(found) == {"retrain-drift", "forecast-drift", "monitor-drift",
                              "train-drift"}  # fmt: skip
        crons = {n: [s["schedule"]["cron"] for s in d["schedules"]] for n, d in found.items()}
        assert crons == {"retrain-drift": ["0 3 * * 0"], "forecast-drift": ["* * * * *"],
                         "monitor-drift": ["0 7 * * *"], "train-drift": []}  # fmt: skip
        assert {d["work_pool_name"] for d in found.values()} == {"rnnflow"}

        cli("--local", "forecast", str(experiment), "--as-of", "200..280")  # backfill
        monitor = _api(api, f"/deployments/{found['monitor-drift']['id']}/create_flow_run")
        log = state / "prefect" / "worker.log"

        def finished(deployment: str, manual: bool | None = None):
            runs = [r for r in _runs(api, found[deployment]["id"])
                    if r["state_type"] == "COMPLETED" and (manual is None
                    or bool(r.get("auto_scheduled")) != manual)]  # fmt: skip
            failed = [r for r in _runs(api, found[deployment]["id"])
                      if r["state_type"] in ("FAILED", "CRASHED")]  # fmt: skip
            assert not failed, log.read_text()[-4000:]
            return runs

        _wait_until(lambda: finished("monitor-drift"), 240, "the monitor run", log)
        # the monitor found the drift and started the retrain deployment
        _wait_until(lambda: finished("retrain-drift"), 240, "the retrain it started", log)
        # the every-minute cron fired and its run forecast into the store
        _wait_until(lambda: finished("forecast-drift", manual=False), 240,
                    "a scheduled forecast", log)  # fmt: skip
        assert monitor["deployment_id"] == found["monitor-drift"]["id"]

        from mlflow import MlflowClient

        client = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
        champion = client.get_model_version_by_alias("drift", "champion")
        assert str(champion.version) == "2"  # the retrain's gate promoted it
        text = log.read_text()
        assert "monitor over 20 origin(s)" in text and "retrain: MASE" in text
        assert "forecast at origin 319" in text  # what `rnnflow forecast` prints
        assert not [n for n in TF_NOTICES if n in text]

        status = cli("prefect", "status").stdout
        assert f"Prefect API in use: {api}" in status and "worker of pool" in status
    finally:
        records = [json.loads(p.read_text()) for p in (state / "prefect").glob("*.json")]
        stopped = run_cli(["prefect", "stop"], env=env)
    assert stopped.returncode == 0 and "stopped worker" in stopped.stdout
    assert not [r["pid"] for r in records if _alive(r["pid"])]
