"""`rnnflow server`: one warm process that runs CLI commands for the `rnnflow`
client, so a run pays no start-up tax.

A fresh `rnnflow train` spends 8-10 s importing TensorFlow, MLflow and Prefect
and, with no Prefect server running, another 10 s starting a temporary one.
`rnnflow server` pays both once: it starts (or finds) a Prefect server on
127.0.0.1, imports everything, and listens on 127.0.0.1 for commands. While it
runs, `rnnflow train|compare|retrain|tune|predict|forecast|monitor ...` from any directory sends its
arguments, working directory and `MLFLOW_*`/`RNNFLOW_*` environment there and
prints what comes back: the same output and exit code as running locally.
Commands run one at a time, in the order they arrive.

The server writes `server-<project>.json` (address, pid, a random token, the
code it runs; mode 0600) to `$RNNFLOW_STATE_DIR` (default `~/.cache/rnnflow`,
one per user); the client reads it, and a request without the token is
refused. `<project>` names the checkout whose code runs, so a server never
serves another checkout. `rnnflow --local ...` or `RNNFLOW_LOCAL=1` skips the
server.

**Started on first use** (as build tools start their daemons): when no server
runs, the first served command starts one in the background
(`rnnflow server --daemon`), waits until it is warm and runs there. It stops
itself after `RNNFLOW_SERVER_IDLE` seconds without a command (default 1800),
and is replaced when the installed code changes (`code_fingerprint`).
`rnnflow server status|stop` show and stop it; `RNNFLOW_AUTOSTART=0` (or a
`CI` variable) runs commands here instead of starting one.

This module is the client and what both sides share (the server file, the
code fingerprint); `flows/daemon.py` is the server. Only the standard library
is imported at module level: the client side runs in every `rnnflow` call.
"""

import contextlib
import hashlib
import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ENV_PREFIXES = ("MLFLOW_", "RNNFLOW_")
PROJECT = Path(__file__).resolve().parent.parent  # the checkout whose code runs
IDLE_SECONDS = 1800
# Installed packages whose upgrade a warm server would not see.
_PACKAGES = ("tensorflow", "keras", "mlflow", "prefect", "numpy", "pandas")


def state_dir() -> Path:
    """Where the server's discovery file lives."""
    default = Path.home() / ".cache" / "rnnflow"
    return Path(os.environ.get("RNNFLOW_STATE_DIR", default))


def idle_seconds() -> int:
    """How long the background server waits for a command before it stops."""
    return int(os.environ.get("RNNFLOW_SERVER_IDLE", IDLE_SECONDS))


def server_file() -> Path:
    """This checkout's server file: one server per user and checkout."""
    project = hashlib.sha256(str(PROJECT).encode()).hexdigest()[:12]
    return state_dir() / f"server-{project}.json"


def code_fingerprint() -> str:
    """What a warm server's answers depend on besides the request: this
    checkout's Python files (path, size, mtime), the interpreter and the
    installed packages that rnnflow imports. Costs a few milliseconds of
    `stat` calls; a change means the running server holds stale code."""
    from importlib.util import find_spec

    digest = hashlib.sha256(sys.executable.encode())
    for folder in ("components", "flows"):
        for path in sorted((PROJECT / folder).rglob("*.py")):
            stat = path.stat()
            name = path.relative_to(PROJECT)
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for name in _PACKAGES:
        spec = find_spec(name)  # locates without importing
        if spec is not None and spec.origin:
            digest.update(f"{name}:{os.stat(spec.origin).st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def find_server() -> dict | None:
    """The running server's {url, token, pid, fingerprint, ...}, or None (no
    file, a dead pid, or no answer within half a second)."""
    path = server_file()
    try:
        info = json.loads(path.read_text())
        os.kill(info["pid"], 0)
        request = urllib.request.Request(
            f"{info['url']}/health", headers={"X-Rnnflow-Token": info["token"]}
        )
        with urllib.request.urlopen(request, timeout=0.5) as answer:
            answer.read()
    except (OSError, ValueError, KeyError):
        return None
    return info


def autostart_enabled() -> bool:
    """Start a server on first use unless RNNFLOW_AUTOSTART=0 or on CI (a
    fresh machine per run: a background process only costs memory there)."""
    setting = os.environ.get("RNNFLOW_AUTOSTART", "").strip().lower()
    if setting:
        return setting not in ("0", "false", "no", "off")
    return not os.environ.get("CI")


def ensure_server(start_timeout: float = 180) -> dict | None:
    """The server to send this command to: the running one if it runs this
    code; else (when `autostart_enabled`) a new one, started in the
    background and waited for; None to run here. One client at a time starts
    it (a lock file), so simultaneous first calls share one server."""
    import fcntl

    server = find_server()
    if server and server.get("fingerprint") is None:
        return server  # started by hand (`rnnflow server`): the user's choice
    code = code_fingerprint()
    if server and server["fingerprint"] == code:
        return server
    if not autostart_enabled():
        return None
    path = server_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another client may be starting one
        server = find_server()
        if server and server.get("fingerprint") == code:
            return server
        if server:
            print("(the installed code changed: restarting the rnnflow server)",
                  file=sys.stderr)  # fmt: skip
            stop_server(server)
        return _start_daemon(start_timeout)


def _start_daemon(timeout: float) -> dict | None:
    log = server_file().with_suffix(".log")
    idle = idle_seconds()
    print(
        f"(starting the rnnflow server in the background, once: later commands "
        f"skip the start-up. It stops after {idle // 60 or 1} min idle; "
        "`rnnflow server stop` stops it now, RNNFLOW_AUTOSTART=0 runs without it)",
        file=sys.stderr, flush=True,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNFLOW_LOCAL")}
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "server", "--daemon"],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            cwd=PROJECT, env=env, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-2000:]
            print(f"(the rnnflow server did not start; running here)\n{tail}",
                  file=sys.stderr)  # fmt: skip
            return None
        server = find_server()
        if server and server["pid"] == process.pid:
            return server
        time.sleep(0.2)
    print(f"(the rnnflow server is not up after {timeout:.0f} s; running here. "
          f"Its log: {log})", file=sys.stderr)  # fmt: skip
    return None


def stop_server(server: dict, timeout: float = 60) -> bool:
    """Ask `server` to stop and wait until its process is gone."""
    with contextlib.suppress(OSError):
        request = urllib.request.Request(
            f"{server['url']}/stop", data=b"", method="POST",
            headers={"X-Rnnflow-Token": server["token"]},
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=5).read()
    deadline = time.monotonic() + timeout
    asked = time.monotonic()
    while time.monotonic() < deadline:
        try:
            os.kill(server["pid"], 0)
        except OSError:
            return True
        if time.monotonic() - asked > 10:  # an older server without /stop
            with contextlib.suppress(OSError):
                os.kill(server["pid"], signal.SIGTERM)
            asked = float("inf")
        time.sleep(0.2)
    return False


def describe(server: dict | None) -> str:
    """`rnnflow server status`: what runs for this checkout, in a few lines."""
    if server is None:
        return (f"no rnnflow server for {PROJECT}; the next `rnnflow train|compare|"
                "retrain|tune` starts one" + ("" if autostart_enabled() else
                " (not now: RNNFLOW_AUTOSTART=0 or CI is set)"))  # fmt: skip
    code = server.get("fingerprint")
    state = "by hand" if code is None else (
        "current code" if code == code_fingerprint() else
        "stale code: the next command restarts it"
    )  # fmt: skip
    idle = server.get("idle_seconds")
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(server.get("started", 0)))
    return "\n".join([
        f"rnnflow server {server['url']} (pid {server['pid']}) for {PROJECT}",
        f"started {started}, {state}" + (f", stops after {idle} s idle" if idle else ""),
    ])  # fmt: skip


class ServerGone(Exception):
    """The server went away before it began the command (it stopped while
    idle, or was killed): the command can run here instead."""


def submit(server: dict, argv: list[str]) -> int:
    """Run `argv` on the server; stream its stdout/stderr here; return its
    exit code.

    Raises:
        ServerGone: the server did not take the command.
    """
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    body = json.dumps(
        {"argv": argv, "cwd": os.getcwd(), "env": env, "tty": sys.stderr.isatty()}
    ).encode()
    host, port = server["url"].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=None)
    try:
        connection.request(
            "POST", "/run", body,
            {"Content-Type": "application/json", "X-Rnnflow-Token": server["token"]},
        )  # fmt: skip
        answer = connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        raise ServerGone(f"the rnnflow server did not take the command: {exc}") from None
    if answer.status != 200:
        print(f"error: rnnflow server answered {answer.status}", file=sys.stderr)
        return 1
    code = 1
    for line in answer:
        message = json.loads(line)
        if "exit" in message:
            code = message["exit"]
        else:
            stream = sys.stdout if message["stream"] == "stdout" else sys.stderr
            stream.write(message["text"])
            stream.flush()
    connection.close()
    return code


def answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
    except OSError:
        return False
    return True
