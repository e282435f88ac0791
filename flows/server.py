"""`rnnflow server`: one warm process that runs CLI commands for the `rnnflow`
client, so a run pays no start-up tax.

A fresh `rnnflow train` spends 8-10 s importing TensorFlow, MLflow and Prefect
and, with no Prefect server running, another 10 s starting a temporary one.
`rnnflow server` pays both once: it starts (or finds) a Prefect server on
127.0.0.1, imports everything, and listens on 127.0.0.1 for commands. While it
runs, `rnnflow train|compare|retrain|tune ...` from any directory sends its
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

Only the standard library is imported at module level: the client side runs in
every `rnnflow` call.
"""

import contextlib
import hashlib
import http.client
import http.server
import io
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

_ENV_PREFIXES = ("MLFLOW_", "RNNFLOW_")
# Set by rnnflow at import in the server; kept unless the client sets them.
_SERVER_DEFAULTS = ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",)
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


def find_prefect_api(port: int = 4200) -> str | None:
    """The API of a Prefect server already running on 127.0.0.1:`port`
    (`prefect server start`), or None: using it saves the ~10 s a temporary
    server costs every process."""
    url = f"http://127.0.0.1:{port}/api"
    return url if _answers(f"{url}/health", timeout=0.3) else None


class ServerGone(Exception):
    """The server went away before it began the command (it stopped while
    idle, or was killed): the command can run here instead."""


def submit(server: dict, argv: list[str]) -> int:
    """Run `argv` on the server; stream its stdout/stderr here; return its
    exit code.

    Raises:
        ServerGone: the server did not take the command.
    """
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
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


class _Stream(io.TextIOBase):
    """A text stream whose writes become NDJSON lines on the HTTP response;
    a terminal when the client's is (training then shows one updating line)."""

    def __init__(self, name: str, send, tty: bool = False):
        self._name, self._send, self._tty = name, send, tty

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        if text:
            self._send({"stream": self._name, "text": text})
        return len(text)


class _Handler(http.server.BaseHTTPRequestHandler):
    token = ""
    lock = threading.Lock()
    run_cli = None  # `rnnflow`'s entry point, `(argv) -> exit code`; set by `serve`
    last_used = time.monotonic()  # the end of the last command (idle stop)
    stop = None  # stops the server; set by `serve`

    def log_message(self, format, *args):  # keep the server's terminal quiet
        pass

    def _authorized(self) -> bool:
        if secrets.compare_digest(self.headers.get("X-Rnnflow-Token", ""), self.token):
            return True
        self.send_error(403, "missing or wrong X-Rnnflow-Token")
        return False

    def do_GET(self):
        if self.path == "/health" and self._authorized():
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

    def do_POST(self):
        if self.path == "/stop" and self._authorized():
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"stopping")
            type(self).stop()
            return
        if self.path != "/run" or not self._authorized():
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        write_lock = threading.Lock()

        def send(message: dict) -> None:
            with write_lock:
                self.wfile.write((json.dumps(message) + "\n").encode())
                self.wfile.flush()

        with self.lock:  # one command at a time: one TensorFlow, one cwd
            try:
                code = _run_command(self.run_cli, request, send)
            finally:
                type(self).last_used = time.monotonic()
        send({"exit": code})


def _run_command(main, request: dict, send) -> int:
    """`main(argv)` (`rnnflow <argv>`) in this process, in the client's
    directory and with its MLFLOW_*/RNNFLOW_* variables; output goes to
    `send`."""
    from flows import terminal

    stdout = _Stream("stdout", send)
    stderr = _Stream("stderr", send, bool(request.get("tty")))
    logs = logging.StreamHandler(stderr)
    verbose = "--verbose" in request["argv"] or request["env"].get(terminal.VERBOSE)
    if verbose:
        logs.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
    else:  # what the same command prints when it runs in the client
        terminal.quiet(logs)
    loggers = [logging.getLogger(name) for name in ("prefect", "rnnflow")]
    saved_env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    saved_cwd = os.getcwd()
    try:
        for key in saved_env:
            del os.environ[key]
        os.environ.update(
            {k: saved_env[k] for k in _SERVER_DEFAULTS if k in saved_env}
            | request["env"]
        )
        os.chdir(request["cwd"])
        for logger in loggers:
            logger.addHandler(logs)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                return main(["--local", *request["argv"]])
            except SystemExit as exc:  # argparse errors and --help
                return exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # noqa: BLE001 - the server must survive
                print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
    finally:
        for logger in loggers:
            logger.removeHandler(logs)
        os.chdir(saved_cwd)
        for key in [k for k in os.environ if k.startswith(_ENV_PREFIXES)]:
            del os.environ[key]
        os.environ.update(saved_env)


def serve(
    host: str,
    port: int,
    prefect_port: int,
    ui_port: int | None,
    main,
    ui_command=None,
    idle_seconds: int | None = None,
) -> int:
    """Start (or reuse) a Prefect server, warm up, write the server file, and
    answer commands (`main(argv)`: the CLI's entry point, passed in so this
    module never imports the CLI that imports it) until SIGINT/SIGTERM,
    `/stop`, or `idle_seconds` without a command; stop what it started.
    `ui_command(host, port)`: the MLflow UI's command line, started beside it
    when `ui_port` is set. With `idle_seconds` (the background server) the
    file also records the code it runs, so a client with other code
    replaces it."""
    children: list[subprocess.Popen] = []
    waiting = None
    if not os.environ.get("PREFECT_API_URL"):
        url = f"http://127.0.0.1:{prefect_port}/api"
        if not _answers(f"{url}/health") and _taken(prefect_port):
            prefect_port = _free_port()  # something else listens there
            url = f"http://127.0.0.1:{prefect_port}/api"
        if not _answers(f"{url}/health"):
            children.append(_start(["prefect", "server", "start", "--host",
                                    "127.0.0.1", "--port", str(prefect_port)]))  # fmt: skip
            waiting = url  # it starts while the imports below run
        os.environ["PREFECT_API_URL"] = url
    if ui_port:
        children.append(_start(ui_command("127.0.0.1", ui_port)))
        print(f"MLflow UI http://127.0.0.1:{ui_port}", flush=True)
    _warm_up()
    if waiting:
        _wait_for(f"{waiting}/health", 120, "prefect server")
    print(f"Prefect API {os.environ['PREFECT_API_URL']}", flush=True)
    _Handler.token = secrets.token_hex(16)
    _Handler.run_cli = staticmethod(main)
    httpd = http.server.ThreadingHTTPServer((host, port), _Handler)
    address = f"http://{host}:{httpd.server_address[1]}"
    path = server_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"url": address, "pid": os.getpid(), "token": _Handler.token,
            "project": str(PROJECT), "started": time.time()}  # fmt: skip
    if idle_seconds:
        info |= {"fingerprint": code_fingerprint(), "idle_seconds": idle_seconds}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(info, file)

    def stop(*_):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    _Handler.stop = staticmethod(stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if idle_seconds:
        _Handler.last_used = time.monotonic()
        threading.Thread(
            target=_stop_when_idle, args=(idle_seconds, stop), daemon=True
        ).start()
    print(f"rnnflow server on {address}; rnnflow commands now run here. "
          "Ctrl-C stops.", flush=True)  # fmt: skip
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(path.read_text())["pid"] == os.getpid():
                path.unlink()
        for child in children:
            child.terminate()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=20)
    return 0


def _stop_when_idle(seconds: float, stop) -> None:
    """Call `stop` once no command has run for `seconds` (none running)."""
    while True:
        time.sleep(min(5.0, seconds / 4))
        idle = time.monotonic() - _Handler.last_used
        if idle >= seconds and not _Handler.lock.locked():
            print(f"idle for {idle:.0f} s: stopping", flush=True)
            stop()
            return


def _warm_up() -> None:
    """Import what every command needs, now rather than on the first request."""
    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import flows.compare  # noqa: F401  (TensorFlow, Keras, MLflow, Prefect)
    import flows.retrain  # noqa: F401
    import flows.steps  # noqa: F401
    import flows.train  # noqa: F401
    import flows.tune  # noqa: F401

    print(f"warmed up in {time.perf_counter() - started:.1f} s", flush=True)


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def _taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port`."""
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
    except OSError:
        return False
    return True


def _wait_for(url: str, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(url):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer at {url} within {seconds:g} s")
