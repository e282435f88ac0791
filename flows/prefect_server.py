"""The Prefect server and worker that rnnflow's deployments live on: started
once, detached, so they outlive the command that started them (a temporary
Prefect server vanishes with its process, and the deployments and
schedules with it).

Which Prefect API a command uses, first found:

1. `PREFECT_API_URL`, when set (a server of your own, Prefect Cloud);
2. rnnflow's own server, when it runs (`rnnflow prefect start`, or started by
   `rnnflow deploy` or the background server): 127.0.0.1:4210
   (`RNNFLOW_PREFECT_PORT`), its own home and database under
   `~/.cache/rnnflow/prefect` (`RNNFLOW_STATE_DIR`), so a `prefect server
   start` beside it (port 4200, `~/.prefect`) never collides with it;
3. a Prefect server answering on 127.0.0.1:4200 (`prefect server start`).

The worker (`prefect worker start --pool rnnflow`) runs the deployments'
flow runs, each in a fresh process. `rnnflow prefect stop` stops both.

Standard library only at module level: the CLI's client side imports it.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from flows.server import PROJECT, answers, state_dir

OWN_PORT = 4210  # not Prefect's 4200: `prefect server start` stays free to run
USER_PORT = 4200  # where `prefect server start` listens by default
POOL = "rnnflow"


def own_port() -> int:
    return int(os.environ.get("RNNFLOW_PREFECT_PORT", OWN_PORT))


def home() -> Path:
    """rnnflow's Prefect server's home: its database, logs and records."""
    return state_dir() / "prefect"


def _record(name: str) -> Path:
    return home() / f"{name}.json"


def _read(name: str) -> dict | None:
    """The record of a process rnnflow started (`server`, `worker`), if it
    still runs."""
    try:
        found = json.loads(_record(name).read_text())
        os.kill(found["pid"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return found


def own_server() -> dict | None:
    """rnnflow's own Prefect server when it runs and answers: {url, pid, log}."""
    found = _read("server")
    if found and answers(f"{found['url']}/health", timeout=1.0):
        return found
    return None


def find_api() -> str | None:
    """The Prefect API this command should use (see the module's order), or
    None when none runs."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    found = own_server()
    if found:
        return found["url"]
    url = f"http://127.0.0.1:{USER_PORT}/api"
    return url if answers(f"{url}/health", timeout=0.3) else None


def lasting_api(say=print) -> str:
    """`find_api()`, else rnnflow's own server, started now (detached)."""
    return find_api() or start_server(say)["url"]


def start_server(
    say=print, timeout: float = 180, wait: bool = True, port: int | None = None
) -> dict:
    """Start rnnflow's own Prefect server in the background (or return the
    running one): 127.0.0.1, its own port and home, a new session (Ctrl-C in
    this terminal does not reach it), output to `home()/server.log`. With
    `wait=False` it returns at once (wait for `url/health` yourself)."""
    found = own_server()
    if found:
        return found
    port = port or own_port()
    if taken(port):
        port = free_port()  # something else listens there
    folder = home()
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(folder),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # one sqlite file behind the server, its worker and every flow run: wait
        # for a lock as long as Prefect's own tests do (30 s, default 10 s), so a
        # busy minute answers late instead of 503 (clients retry those anyway)
        "PREFECT_SERVER_DATABASE_TIMEOUT": "30",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
            f"sqlite+aiosqlite:///{folder / 'prefect.db'}"
        ),
    }
    url = f"http://127.0.0.1:{port}/api"
    log = folder / "server.log"
    say(f"starting rnnflow's Prefect server on {url} (UI http://127.0.0.1:{port}; "
        f"log {log}); it keeps running: `rnnflow prefect stop` stops it")  # fmt: skip
    process = _detached(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)], env, log,
    )  # fmt: skip
    info = {"url": url, "pid": process.pid, "log": str(log), "started": time.time()}
    _record("server").write_text(json.dumps(info))
    if wait:
        wait_for(f"{url}/health", timeout, "rnnflow's Prefect server", process)
    return info


def ensure_worker(api: str, say=print) -> dict:
    """A worker of pool `rnnflow` polling `api`, started in the background
    when none that rnnflow started runs for it."""
    found = _read("worker")
    if found and found.get("api") == api:
        return found
    if found:  # it polls another API: replace it
        stop_process(found["pid"])
    log = home() / "worker.log"
    env = dict(os.environ) | {"PREFECT_API_URL": api, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = _detached(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
         "--type", "process", "--name", f"rnnflow-{socket.gethostname()}"], env, log,
    )  # fmt: skip
    info = {"pid": process.pid, "api": api, "log": str(log), "started": time.time()}
    home().mkdir(parents=True, exist_ok=True)
    _record("worker").write_text(json.dumps(info))
    say(f"started a Prefect worker for pool {POOL!r} (pid {process.pid}; log {log}); "
        "it runs the deployments' flow runs until `rnnflow prefect stop`")  # fmt: skip
    return info


def stop_all() -> list[str]:
    """Stop the worker and the server rnnflow started; what was stopped."""
    stopped = []
    for name in ("worker", "server"):
        found = _read(name)
        if found:
            stop_process(found["pid"])
            stopped.append(f"{name} (pid {found['pid']})")
        _record(name).unlink(missing_ok=True)
    return stopped


def describe() -> str:
    """`rnnflow prefect status`: which API commands use, and what rnnflow runs."""
    server, worker, api = own_server(), _read("worker"), find_api()
    lines = [f"Prefect API in use: {api or 'none (a temporary server per command)'}"]
    if server:
        ui = server["url"].removesuffix("/api")
        lines.append(f"rnnflow's Prefect server: {ui} (pid {server['pid']}, "
                     f"log {server['log']})")  # fmt: skip
    else:
        lines.append("rnnflow's Prefect server: not running (`rnnflow prefect start`)")
    if worker:
        lines.append(f"worker of pool {POOL!r}: pid {worker['pid']} on {worker['api']} "
                     f"(log {worker['log']})")  # fmt: skip
    else:
        lines.append(f"worker of pool {POOL!r}: not running (`rnnflow deploy` starts one)")
    return "\n".join(lines)


def stop_process(pid: int, timeout: float = 30) -> None:
    """SIGTERM the process group `pid` leads, then wait; SIGKILL if it stays."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(OSError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
            except OSError:
                return
            time.sleep(0.2)


def _detached(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A process in a session of its own, output appended to `log`, started
    from the project folder (so `flows` imports in it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, env=env, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float, what: str, process=None) -> None:
    """Until `url` answers; fails early when `process` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(url):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}) before answering")
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer at {url} within {seconds:g} s")
