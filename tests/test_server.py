"""`rnnflow server`: a real warm server process runs CLI commands sent by the
real `rnnflow` client, in the client's directory and with its environment."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, run_cli, write_experiment
from mlflow import MlflowClient


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
        while not list(state.glob("server-*.json")):
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "no server file within 180 s"
            time.sleep(0.5)
        (path,) = state.glob("server-*.json")  # one per checkout
        info = json.loads(path.read_text())
        assert info["url"].startswith("http://127.0.0.1:") and info["pid"] == server.pid
        assert "fingerprint" not in info  # started by hand: never replaced
        assert path.stat().st_mode & 0o077 == 0  # token: owner only
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
    assert not list(state.glob("server-*.json"))


def test_the_prefect_api_in_use_is_the_env_then_rnnflows_own_server(
    prefect_api, tmp_path, monkeypatch
):
    from flows import prefect_server

    monkeypatch.setenv("RNNFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    assert prefect_server.find_api() == "http://127.0.0.1:1/api"  # said: used as is
    monkeypatch.delenv("PREFECT_API_URL")
    record = tmp_path / "prefect" / "server.json"
    record.parent.mkdir()
    # rnnflow's own server, as its record says (here: the session's server)
    record.write_text(json.dumps({"url": prefect_api, "pid": os.getpid(), "log": ""}))
    assert prefect_server.find_api() == prefect_api
    with socket.socket() as sock:  # a record whose server no longer answers
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
        record.write_text(json.dumps({"url": dead, "pid": os.getpid(), "log": ""}))
        assert prefect_server.own_server() is None
        assert prefect_server.find_api() != dead


def _daemon_env(tmp_path, prefect_api, mlflow_uri, **extra) -> dict[str, str]:
    return {
        "RNNFLOW_LOCAL": "",
        "RNNFLOW_AUTOSTART": "1",  # also on CI, where it is off by default
        "RNNFLOW_STATE_DIR": str(tmp_path / "state"),
        "PREFECT_API_URL": prefect_api,  # the server uses the session's Prefect
        "MLFLOW_TRACKING_URI": mlflow_uri,
        **extra,
    }


def _tiny_experiment(folder, series_csv):
    folder.mkdir(exist_ok=True)
    write_experiment(
        folder / "exp.yaml",
        f"data: {{path: {series_csv}}}\nmodel: {{kind: mlp, units: [4]}}\n"
        "train: {epochs: 2}\n",
    )


def _server_info(env) -> dict | None:
    from flows import server

    saved = os.environ.get("RNNFLOW_STATE_DIR")
    os.environ["RNNFLOW_STATE_DIR"] = env["RNNFLOW_STATE_DIR"]
    try:
        return server.find_server()
    finally:
        os.environ.pop("RNNFLOW_STATE_DIR")
        if saved is not None:
            os.environ["RNNFLOW_STATE_DIR"] = saved


def _on_a_terminal(args, env, cwd) -> str:
    """What `rnnflow ARGS` writes to stderr when stderr is a terminal."""
    import pty
    import threading

    leader, follower = pty.openpty()
    chunks = []

    def read():  # as it comes: a full terminal buffer would block the writer
        with contextlib.suppress(OSError):  # EIO once the writer is gone
            while chunk := os.read(leader, 65536):
                chunks.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "flows.cli", *args], env={**os.environ, **env},
            cwd=cwd, stdout=subprocess.DEVNULL, stderr=follower, timeout=300,
        )  # fmt: skip
    finally:
        os.close(follower)
        reader.join(timeout=30)
        os.close(leader)
    assert done.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def _gone(pid: int, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.2)
    return False


def test_the_first_command_starts_a_background_server_the_next_ones_use(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    from flows.server import code_fingerprint

    env = _daemon_env(tmp_path, prefect_api, mlflow_uri)
    work = tmp_path / "work"
    _tiny_experiment(work, series_csv)
    info = None
    try:
        first = run_cli(["train", "exp.yaml", "--json"], env=env, cwd=work)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "starting the rnnflow server in the background" in first.stderr
        info = _server_info(env)
        assert info is not None and info["fingerprint"] == code_fingerprint()
        assert f"(running on rnnflow server {info['url']})" in first.stderr
        second = run_cli(["train", "exp.yaml", "--json"], env=env, cwd=work)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "starting the rnnflow server" not in second.stderr
        assert f"(running on rnnflow server {info['url']})" in second.stderr
        # what a local run prints: the run's own lines, no engine notices
        assert "built mlp" in second.stderr and "Finished in state" not in second.stderr
        result = json.loads(second.stdout.strip().splitlines()[-1])
        run = MlflowClient(mlflow_uri).get_run(result["run_id"])
        assert run.data.tags["rnnflow_worker"].endswith(f":{info['pid']}")
        # on a terminal, training is one line that updates, as in a local run
        seen = _on_a_terminal(["train", "exp.yaml"], env, work)
        assert "\r\x1b[2Kepoch 2/2" in seen and "Finished in state" not in seen
        status = run_cli(["server", "status"], env=env, cwd=work)
        assert f"pid {info['pid']}" in status.stdout and "current code" in status.stdout
        stop = run_cli(["server", "stop"], env=env, cwd=work)
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
        assert _gone(info["pid"]) and _server_info(env) is None
        # off: the command runs here and starts nothing
        off = run_cli(["train", "exp.yaml"], env={**env, "RNNFLOW_AUTOSTART": "0"},
                      cwd=work)  # fmt: skip
        assert off.returncode == 0 and "rnnflow server" not in off.stderr
        assert _server_info(env) is None
    finally:
        if info:
            with contextlib.suppress(OSError):
                os.kill(info["pid"], signal.SIGTERM)


def test_a_server_running_other_code_is_replaced_and_an_idle_one_stops(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    env = _daemon_env(tmp_path, prefect_api, mlflow_uri, RNNFLOW_SERVER_IDLE="6")
    work = tmp_path / "work"
    _tiny_experiment(work, series_csv)
    pids = []
    try:
        first = run_cli(["train", "exp.yaml"], env=env, cwd=work)
        assert first.returncode == 0, first.stderr[-3000:]
        old = _server_info(env)
        pids.append(old["pid"])
        # as if the code changed since it started: the file says which it runs
        path = Path(env["RNNFLOW_STATE_DIR"]).glob("server-*.json")
        (path,) = list(path)
        path.write_text(json.dumps({**old, "fingerprint": "older code"}))
        second = run_cli(["train", "exp.yaml"], env=env, cwd=work)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "the installed code changed: restarting" in second.stderr
        assert _gone(old["pid"])
        new = _server_info(env)
        pids.append(new["pid"])
        assert new["pid"] != old["pid"]
        assert f"(running on rnnflow server {new['url']})" in second.stderr
        assert _gone(new["pid"], 60)  # 6 s without a command
        assert not path.exists()
        assert "idle for" in path.with_suffix(".log").read_text()
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)


def test_the_code_fingerprint_follows_the_checkouts_files(tmp_path, monkeypatch):
    from flows import server

    for folder in ("components", "flows"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(server, "PROJECT", tmp_path)
    before = server.code_fingerprint()
    assert server.code_fingerprint() == before
    (tmp_path / "flows" / "a.py").write_text("x = 22\n")
    assert server.code_fingerprint() != before
    file_before = server.server_file()
    monkeypatch.setattr(server, "PROJECT", tmp_path / "other")
    assert server.server_file() != file_before  # another checkout, another server


@pytest.mark.parametrize(
    ("autostart", "ci", "expected"),
    [("", "", True), ("", "true", False), ("1", "true", True), ("0", "", False)],
)
def test_autostart_is_on_except_on_ci_or_when_turned_off(
    monkeypatch, autostart, ci, expected
):
    from flows.server import autostart_enabled

    monkeypatch.setenv("RNNFLOW_AUTOSTART", autostart)
    monkeypatch.setenv("CI", ci)
    assert autostart_enabled() is expected


def test_a_killed_client_stops_its_command_on_the_server_and_the_rerun_resumes(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    """SIGKILL to the client's process group mid-training (what a closed
    terminal or a killed shell does): the server interrupts the command within
    a second, the run ends KILLED with its checkpoint kept, and the same
    command again resumes from it."""
    env = _daemon_env(tmp_path, prefect_api, mlflow_uri)
    work = tmp_path / "work"
    work.mkdir()
    write_experiment(
        work / "long.yaml",
        f"data: {{path: {series_csv}}}\nsplit: {{val: 40, test: 40}}\n"
        "window: {input_width: 12, horizon: 1}\nmodel: {kind: gru, units: [4]}\n"
        "train: {epochs: 300, patience: 0, batch_size: 8, verbose_every: 1}\n"
        "tracking: {experiment: killed-client}\n",
    )
    info = None
    try:
        client = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "train", "long.yaml"],
            env={**os.environ, **env}, cwd=work, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        seen = []
        for line in client.stderr:  # on the server and well under way
            seen.append(line)
            if "epoch 20/300" in line:
                break
        os.killpg(client.pid, signal.SIGKILL)
        client.wait(timeout=60)
        assert "(running on rnnflow server" in "".join(seen), "".join(seen)
        info = _server_info(env)
        mlflow = MlflowClient(mlflow_uri)
        experiment = mlflow.get_experiment_by_name("killed-client").experiment_id
        deadline = time.monotonic() + 60
        while (runs := mlflow.search_runs([experiment])) and runs[0].info.status == (
            "RUNNING"
        ) and time.monotonic() < deadline:
            time.sleep(0.5)
        (killed,) = runs
        assert killed.info.status == "KILLED"  # interrupted, not trained to the end
        assert len(mlflow.get_metric_history(killed.info.run_id, "loss")) < 300

        again = run_cli(["train", "long.yaml", "--json"], env=env, cwd=work)
        assert again.returncode == 0, again.stderr[-3000:]
        result = json.loads(again.stdout.strip().splitlines()[-1])
        assert result["metrics"]["resumed_from_epoch"] > 0
        statuses = {r.info.status for r in mlflow.search_runs([experiment])}
        assert statuses == {"KILLED", "FINISHED"}  # nothing left RUNNING
        assert _server_info(env)["pid"] == info["pid"]  # the server lived on
    finally:
        if info:
            with contextlib.suppress(OSError):
                os.kill(info["pid"], signal.SIGTERM)
