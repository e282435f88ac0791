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

The server writes `server.json` (address, pid, a random token; mode 0600) to
`$RNNFLOW_STATE_DIR` (default `~/.cache/rnnflow`); the client reads it, and a
request without the token is refused. `rnnflow --local ...` or
`RNNFLOW_LOCAL=1` skips the server.

Only the standard library is imported at module level: the client side runs in
every `rnnflow` call.
"""

import contextlib
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

SERVED_COMMANDS = ("train", "compare", "retrain", "tune")
_ENV_PREFIXES = ("MLFLOW_", "RNNFLOW_")


def state_dir() -> Path:
    """Where the server's discovery file lives."""
    default = Path.home() / ".cache" / "rnnflow"
    return Path(os.environ.get("RNNFLOW_STATE_DIR", default))


def find_server() -> dict | None:
    """The running server's {url, token, pid}, or None (no file, a dead pid,
    or no answer within half a second)."""
    path = state_dir() / "server.json"
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


def find_prefect_api(port: int = 4200) -> str | None:
    """The API of a Prefect server already running on 127.0.0.1:`port`
    (`prefect server start`), or None: using it saves the ~10 s a temporary
    server costs every process."""
    url = f"http://127.0.0.1:{port}/api"
    return url if _answers(f"{url}/health", timeout=0.3) else None


def submit(server: dict, argv: list[str]) -> int:
    """Run `argv` on the server; stream its stdout/stderr here; return its
    exit code."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    body = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": env}).encode()
    host, port = server["url"].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=None)
    connection.request(
        "POST",
        "/run",
        body,
        {"Content-Type": "application/json", "X-Rnnflow-Token": server["token"]},
    )
    answer = connection.getresponse()
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
    """A text stream whose writes become NDJSON lines on the HTTP response."""

    def __init__(self, name: str, send):
        self._name, self._send = name, send

    def write(self, text: str) -> int:
        if text:
            self._send({"stream": self._name, "text": text})
        return len(text)


class _Handler(http.server.BaseHTTPRequestHandler):
    token = ""
    lock = threading.Lock()
    run_cli = None  # `rnnflow`'s entry point, `(argv) -> exit code`; set by `serve`

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
            code = _run_command(self.run_cli, request, send)
        send({"exit": code})


def _run_command(main, request: dict, send) -> int:
    """`main(argv)` (`rnnflow <argv>`) in this process, in the client's
    directory and with its MLFLOW_*/RNNFLOW_* variables; output goes to
    `send`."""
    stdout, stderr = _Stream("stdout", send), _Stream("stderr", send)
    logs = logging.StreamHandler(stderr)
    logs.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
    loggers = [logging.getLogger(name) for name in ("prefect", "rnnflow")]
    saved_env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    saved_cwd = os.getcwd()
    try:
        for key in saved_env:
            del os.environ[key]
        os.environ.update(request["env"])
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
) -> int:
    """Start (or reuse) a Prefect server, warm up, write server.json, and
    answer commands (`main(argv)`: the CLI's entry point, passed in so this
    module never imports the CLI that imports it) until SIGINT/SIGTERM; stop
    what it started. `ui_command(host, port)`: the MLflow UI's command line,
    started beside it when `ui_port` is set."""
    children: list[subprocess.Popen] = []
    if not os.environ.get("PREFECT_API_URL"):
        url = f"http://127.0.0.1:{prefect_port}/api"
        if not _answers(f"{url}/health"):
            children.append(_start(["prefect", "server", "start", "--host",
                                    "127.0.0.1", "--port", str(prefect_port)]))  # fmt: skip
            _wait_for(f"{url}/health", 120, "prefect server")
        os.environ["PREFECT_API_URL"] = url
    print(f"Prefect API {os.environ['PREFECT_API_URL']}", flush=True)
    if ui_port:
        children.append(_start(ui_command("127.0.0.1", ui_port)))
        print(f"MLflow UI http://127.0.0.1:{ui_port}", flush=True)
    _warm_up()
    _Handler.token = secrets.token_hex(16)
    _Handler.run_cli = staticmethod(main)
    httpd = http.server.ThreadingHTTPServer((host, port), _Handler)
    address = f"http://{host}:{httpd.server_address[1]}"
    path = state_dir() / "server.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"url": address, "pid": os.getpid(), "token": _Handler.token}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(info, file)

    def stop(signum, frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
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
