"""Where runs are stored: the tracking URI (default `sqlite:///<project>/mlruns/mlflow.db`,
artifacts under `<project>/mlruns/artifacts/`, whatever the current directory;
`tracking.uri` or `MLFLOW_TRACKING_URI` override it), a store that is reachable
and has its tables, local state beside it (checkpoints), and a block that owns
MLflow's process-global store for the calls that only read it.
"""

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
from mlflow import MlflowClient

from components.common import private_api
from components.config.paths import project_root


def resolve_tracking_uri(configured: str | None = None) -> str:
    """`tracking.uri`, else `MLFLOW_TRACKING_URI`, else the project's sqlite store."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def default_tracking_uri() -> str:
    """The embedded store: a sqlite file in the project's `mlruns/` folder."""
    return f"sqlite:///{project_root() / 'mlruns' / 'mlflow.db'}"


def artifact_root(tracking_uri: str) -> Path | None:
    """For a sqlite store, artifacts live beside the database; servers decide."""
    parts = urlsplit(tracking_uri)
    if parts.scheme != "sqlite":
        return None
    db_path = Path(tracking_uri.split(":///", 1)[1])
    return db_path.parent / "artifacts"


def local_state_dir(tracking_uri: str, name: str) -> Path:
    """A folder for machine-local state kept beside the runs: beside a sqlite
    store, else in the project's `mlruns/`. E.g. `checkpoints` (resumable
    trainings) or `backtest-cache` (cached backtest folds)."""
    root = artifact_root(tracking_uri)
    base = root.parent if root is not None else project_root() / "mlruns"
    return base / name


def checkpoint_root(tracking_uri: str) -> Path:
    """Where resumable trainings keep their state (local to the machine that
    trains, wherever the runs are tracked)."""
    return local_state_dir(tracking_uri, "checkpoints")


def check_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail fast when a tracking server does not answer, before any work starts.

    MLflow's client would otherwise retry with backoff for minutes. Local stores
    (sqlite, files) need no check.
    """
    import urllib.error
    import urllib.request

    from components.common.errors import TrackingError
    from components.common.redact import redact_url

    if urlsplit(tracking_uri).scheme not in ("http", "https"):
        return
    try:
        urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLflow tracking server {redact_url(tracking_uri)} is unreachable "
            f"({reason}). Start it, or unset MLFLOW_TRACKING_URI / `tracking.uri` "
            "to use the local store."
        ) from None


def open_store(tracking_uri: str) -> None:
    """Before a run: fail fast on an unreachable server; create a new local
    sqlite store exactly once.

    Several processes opening a fresh sqlite store at the same moment each run
    MLflow's schema migrations and collide (alembic: "expected to match one
    row ... 0 found"); measured with four `rnnflow train` at once. An exclusive
    file lock beside the database lets the first create it and the others wait.
    """
    check_reachable(tracking_uri)
    if urlsplit(tracking_uri).scheme != "sqlite":
        return
    import fcntl

    db_path = Path(tracking_uri.split(":///", 1)[1])
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(db_path.with_name(db_path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        MlflowClient(tracking_uri).search_experiments(max_results=1)


_FLUENT = threading.Lock()  # one block at a time owns MLflow's global store


@contextlib.contextmanager
def fluent_store(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-global store (tracking and registry) at
    `tracking_uri` for the block only.

    `Model.log` and `mlflow.pyfunc.load_model("models:/...")` read the global
    URI, and setting it also exports MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI
    to every later subprocess: a notebook or a test would silently send its
    next `mlflow` command to the store of the last run. Both the globals and
    the environment are put back afterwards.
    """
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    with _FLUENT:
        saved_env = {name: os.environ.get(name) for name in names}
        saved = private_api.global_uris()
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        try:
            yield
        finally:
            private_api.set_global_uris(saved)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
