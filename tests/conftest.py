"""Shared fixtures: one real Prefect API per session, a real MLflow store per test,
the gas furnace bytes from ../shared, and small real series written to disk."""

import contextlib
import http.server
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# CLI calls run where the test says: never on a developer's `rnnflow server`
# (test_server.py clears this for the calls it sends to its own server).
os.environ["RNNFLOW_LOCAL"] = "1"
os.environ["RNNFLOW_AUTOSTART"] = "0"  # no background server unless a test asks

REPO = Path(__file__).resolve().parents[1]
SHARED_GAS_FURNACE = (
    Path(os.environ.get("RNNFLOW_SHARED_DIR", REPO.parent / "shared"))
    / "data"
    / "gas_furnace.csv"
)


@pytest.fixture(scope="session")
def prefect_api():
    """A real temporary Prefect server for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def _empty_mlflow_db(tmp_path_factory) -> Path:
    """An empty sqlite store with MLflow's schema, created once per session:
    creating the tables takes about 2 s, copying the file a few ms."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, _empty_mlflow_db) -> str:
    """A fresh sqlite MLflow store in this test's temp dir (a copy of the empty one)."""
    path = tmp_path / "mlruns" / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_empty_mlflow_db, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """RNNFLOW_CACHE_DIR for the session: an empty download cache of its own, so
    no test reads or fills the user's. (The gas furnace series ships with
    rnnflow and is never downloaded, so nothing needs pre-filling.)"""
    directory = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNFLOW_CACHE_DIR", str(directory))
        yield directory


def make_series(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Two coupled noisy sines: learnable, not trivial, and never constant."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    a = np.sin(2 * np.pi * t / 24) + 0.05 * rng.standard_normal(n)
    b = 0.5 * np.cos(2 * np.pi * t / 12) + 0.8 * a + 0.05 * rng.standard_normal(n)
    return pd.DataFrame({"a": a, "b": 10 + 3 * b})


@pytest.fixture
def series_csv(tmp_path) -> Path:
    """A small two-column series as CSV."""
    path = tmp_path / "series.csv"
    make_series().to_csv(path, index=False)
    return path


def child_runs(client, parent) -> list:
    """The runs nested under `parent` (an MLflow Run) in its experiment."""
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )


def write_experiment(path: Path, text: str) -> Path:
    """Write a YAML experiment file and return its path."""
    path.write_text(text)
    return path


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd=None):
    """Run the real `rnnflow` console entry point in a fresh process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=600,
    )


def run_cli_here(args: list[str], env: dict[str, str] | None = None):
    """Run the `rnnflow` entry point in this process, capturing what it prints.

    For tests where a fresh interpreter is not the point: it saves the 10-15 s
    each new process spends importing TensorFlow, MLflow and Prefect.
    """
    from flows.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse errors
                code = exc.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/www on a free loopback port; yields the base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(root), **k
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float) -> str:
    """Poll `url` until it answers (the body) or `seconds` pass (the last error)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# Tests that run flows (a Prefect API), CLI subprocesses or servers are `slow`:
# `python -m pytest -m "not slow"` runs the rest, the unit tests, in a few minutes.
SLOW_FIXTURES = {"prefect_api", "fertility_run"}
SLOW_CALLS = ("run_cli", "subprocess", "mlflow server", "Popen")


def pytest_collection_modifyitems(config, items):
    import inspect

    for item in items:
        source = inspect.getsource(item.function) if hasattr(item, "function") else ""
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or any(
            call in source for call in SLOW_CALLS
        ):
            item.add_marker(pytest.mark.slow)
