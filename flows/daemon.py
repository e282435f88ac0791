"""The `rnnflow server` process: a warm interpreter that answers the client's
commands (`flows/server.py`) over HTTP on 127.0.0.1, one at a time, with the
client's directory, environment and terminal, and the same output and exit
code as a local run. It starts (or reuses) a Prefect server beside it and
stops after `idle_seconds` without a command.
"""

import contextlib
import ctypes
import http.server
import io
import json
import logging
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flows import prefect_server
from flows.server import ENV_PREFIXES, PROJECT, answers, code_fingerprint, server_file

# Set by rnnflow at import in the server; kept unless the client sets them.
_SERVER_DEFAULTS = ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",)


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


@dataclass
class _State:
    """What the requests of one server share."""

    token: str
    run_cli: Callable[[list[str]], int]  # `rnnflow`'s entry point
    stop: Callable[..., None] = lambda *_: None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one command
    last_used: float = field(default_factory=time.monotonic)  # end of the last


class _Server(http.server.ThreadingHTTPServer):
    state: _State


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # keep the server's terminal quiet
        pass

    def _authorized(self) -> bool:
        token = self.server.state.token
        if secrets.compare_digest(self.headers.get("X-Rnnflow-Token", ""), token):
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
            self.server.state.stop()
            return
        if self.path != "/run" or not self._authorized():
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        write_lock = threading.Lock()
        client = _ClientWatch(self.connection)

        def send(message: dict) -> None:
            if client.gone:
                return  # nobody reads: the command is being interrupted
            with write_lock, contextlib.suppress(OSError):
                self.wfile.write((json.dumps(message) + "\n").encode())
                self.wfile.flush()

        state = self.server.state
        with state.lock:  # one command at a time: one TensorFlow, one cwd
            client.start()
            try:
                code = _run_command(state.run_cli, request, send)
            except KeyboardInterrupt:  # the client left between two checks
                code = 130
            finally:
                client.stop()
                state.last_used = time.monotonic()
        send({"exit": code})


class _ClientWatch:
    """Interrupts the command this thread runs when its client goes away.

    Ctrl-C, SIGKILL or a closed terminal end the client process, and the
    kernel closes its socket: the connection turns readable with nothing to
    read. The command then gets a KeyboardInterrupt in its own thread, as a
    local run gets from Ctrl-C: the MLflow run ends KILLED, its checkpoint
    stays, and the same command again resumes it.
    """

    def __init__(self, connection: socket.socket, poll_seconds: float = 0.5):
        self._connection, self._poll = connection, poll_seconds
        self._target: int | None = None  # the command's thread, from start()
        self._done = threading.Event()
        self._lock = threading.Lock()  # no interrupt once the command returned
        self.gone = False

    def start(self) -> None:
        self._target = threading.get_ident()
        threading.Thread(target=self._watch, daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(self._poll):
            if not self._closed():
                continue
            with self._lock:
                if self._done.is_set():
                    return
                self.gone = True
                print("client gone: interrupting its command", flush=True)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._target), ctypes.py_object(KeyboardInterrupt)
                )
            return

    def _closed(self) -> bool:
        try:
            readable, _, _ = select.select([self._connection], [], [], 0)
            if not readable:
                return False
            return self._connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):  # reset, or already closed
            return True


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
        logs.setFormatter(
            logging.Formatter("%(asctime)s | %(levelname)s | %(message)s")
        )
    else:  # what the same command prints when it runs in the client
        terminal.quiet(logs)
    loggers = [logging.getLogger(name) for name in ("prefect", "rnnflow")]
    saved_env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
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
        for key in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
            del os.environ[key]
        os.environ.update(saved_env)


def serve(
    host: str,
    port: int,
    prefect_port: int | None,
    ui_port: int | None,
    main,
    ui_command=None,
    idle_seconds: int | None = None,
) -> int:
    """Find (or start) a lasting Prefect server (`flows.prefect_server`:
    rnnflow's own on `prefect_port`, default 4210), warm up, write the server
    file, and answer commands (`main(argv)`: the CLI's entry point, passed in
    so this module never imports the CLI that imports it) until
    SIGINT/SIGTERM, `/stop`, or `idle_seconds` without a command; stop the
    MLflow UI it started (the Prefect server stays, for the deployments and
    the run history in its UI).
    `ui_command(host, port)`: the MLflow UI's command line, started beside it
    when `ui_port` is set. With `idle_seconds` (the background server) the
    file also records the code it runs, so a client with other code
    replaces it."""
    children: list[subprocess.Popen] = []
    waiting = None
    if not os.environ.get("PREFECT_API_URL"):
        found = prefect_server.find_api()
        if found is None:  # it starts while the imports below run, and lasts
            found = prefect_server.start_server(wait=False, port=prefect_port)["url"]
            waiting = found
        os.environ["PREFECT_API_URL"] = found
    if ui_port:
        children.append(_start(ui_command("127.0.0.1", ui_port)))
        print(f"MLflow UI http://127.0.0.1:{ui_port}", flush=True)
    _warm_up()
    if waiting:
        prefect_server.wait_for(f"{waiting}/health", 180, "rnnflow's Prefect server")
    print(f"Prefect API {os.environ['PREFECT_API_URL']}", flush=True)
    httpd = _Server((host, port), _Handler)
    state = httpd.state = _State(token=secrets.token_hex(16), run_cli=main)
    address = f"http://{host}:{httpd.server_address[1]}"
    path = server_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"url": address, "pid": os.getpid(), "token": state.token,
            "project": str(PROJECT), "started": time.time()}  # fmt: skip
    if idle_seconds:
        info |= {"fingerprint": code_fingerprint(), "idle_seconds": idle_seconds}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(info, file)

    def stop(*_):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    state.stop = stop
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if idle_seconds:
        state.last_used = time.monotonic()
        threading.Thread(
            target=_stop_when_idle, args=(state, idle_seconds), daemon=True
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


def _stop_when_idle(state: _State, seconds: float) -> None:
    """Stop the server once no command has run for `seconds` (none running)."""
    while True:
        time.sleep(min(5.0, seconds / 4))
        idle = time.monotonic() - state.last_used
        if idle >= seconds and not state.lock.locked():
            print(f"idle for {idle:.0f} s: stopping", flush=True)
            state.stop()
            return


def _warm_up() -> None:
    """Import what every command needs, now rather than on the first request."""
    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import flows.compare  # noqa: F401  (TensorFlow, Keras, MLflow, Prefect)
    import flows.forecast  # noqa: F401
    import flows.monitor  # noqa: F401
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


