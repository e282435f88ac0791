"""Everything MLflow: store location, experiments, runs, logging, models.

The only module that imports `mlflow`. Every function takes the tracking URI
and `run_id` explicitly: MLflow's active run is per thread, and Prefect runs
tasks on threads, so nothing here relies on the fluent "active run".

Default store: `sqlite:///<project>/mlruns/mlflow.db` with artifacts under
`<project>/mlruns/artifacts/`, whatever the current directory. Override with
`tracking.uri` or `MLFLOW_TRACKING_URI`.
"""

import contextlib
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from components.common import private_api
from components.config.paths import project_root
from components.evaluation.metrics import BASELINES

_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000


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


# The MLflow UI opens an experiment of this kind in its "Model training" view
# (runs, charts) instead of the GenAI one (traces).
EXPERIMENT_KIND = "mlflow.experimentKind"


def ui_link(base_url: str, experiment_id: str) -> str:
    """A link that opens the experiment's runs in the "Model training" view."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Id of experiment `name`, created (with an explicit artifact folder, a
    description and the forecasting kind) if new."""
    client = MlflowClient(tracking_uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if EXPERIMENT_KIND not in existing.tags:  # made before rnnflow tagged them
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND, "forecasting")
        return existing.experiment_id
    root = artifact_root(tracking_uri)
    if root is not None:
        Path(tracking_uri.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    location = (root / safe_name(name)).as_uri() if root is not None else None
    description = (
        f"rnnflow experiment `{name}`: the runs of `rnnflow train | compare | tune "
        f"| retrain` on it. Tag `rnnflow.role` says which; a compare parent holds "
        "its leaderboard in its description, its children are nested under it."
    )
    try:
        created = client.create_experiment(
            name, artifact_location=location,
            tags={"mlflow.note.content": description, EXPERIMENT_KIND: "forecasting"},
        )  # fmt: skip
        _describe_default_experiment(client)
        return created
    except mlflow.exceptions.MlflowException:
        # Another process created it between our lookup and create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


DEFAULT_EXPERIMENT_NOTE = (
    "MLflow's own default experiment. rnnflow logs nothing here: each rnnflow "
    "experiment (`default`, `fertility`, ...) has its own, listed beside this one."
)


def _describe_default_experiment(client: MlflowClient) -> None:
    """Say on MLflow's `Default` experiment (made with every store, listed
    first in the UI) that rnnflow's runs are elsewhere, unless someone
    already described it."""
    default = client.get_experiment_by_name("Default")
    if default is not None and "mlflow.note.content" not in default.tags:
        client.set_experiment_tag(
            default.experiment_id, "mlflow.note.content", DEFAULT_EXPERIMENT_NOTE
        )


def start_run(
    tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]
) -> str:
    """Create a RUNNING run and return its id."""
    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id


@contextlib.contextmanager
def failing_marks_run(tracking_uri: str, run_id: str) -> Iterator[None]:
    """Any exception inside ends the run FAILED with the message as tag `error`;
    an interruption (Ctrl-C, SIGTERM: exceptions outside `Exception`, such as
    KeyboardInterrupt or Prefect's TerminationSignal) ends it KILLED."""
    try:
        yield
    except BaseException as exc:
        status = "FAILED" if isinstance(exc, Exception) else "KILLED"
        finish_run(tracking_uri, run_id, status, error=f"{type(exc).__name__}: {exc}")
        raise


def finish_run(
    tracking_uri: str, run_id: str, status: str = "FINISHED", error: str | None = None
) -> None:
    """End the run with `status`; record `error` (truncated) when given."""
    client = MlflowClient(tracking_uri)
    if error:
        client.set_tag(run_id, "error", error[:5000])
    client.set_terminated(run_id, status=status)


def kill_stale_runs(
    tracking_uri: str, experiment: str, tag: str, value: str, by_run_id: str
) -> list[str]:
    """End as KILLED the RUNNING runs of `experiment` tagged `tag=value`, other
    than `by_run_id`; return their ids.

    The caller knows these are stale: it holds the lock that a live process
    training them would hold. A process killed outright (SIGKILL) cannot close
    its run, so without this it would stay RUNNING in the UI forever.
    """
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.{tag} = '{value}' and attributes.status = 'RUNNING'",
    )
    stale = [r.info.run_id for r in runs if r.info.run_id != by_run_id]
    for run_id in stale:
        finish_run(
            tracking_uri,
            run_id,
            "KILLED",
            error=f"stale: its process ended without closing the run (killed "
            f"outright?); found and closed by run {by_run_id}",
        )
    return stale


def set_tags(tracking_uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Set string tags on a run."""
    client = MlflowClient(tracking_uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value))


def log_params(tracking_uri: str, run_id: str, params: dict[str, object]) -> None:
    """Log params in batches (None becomes the string 'None')."""
    items = [Param(k, str(v)) for k, v in params.items()]
    client = MlflowClient(tracking_uri)
    for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[i : i + _MAX_PARAMS_PER_BATCH])


def log_metrics(
    tracking_uri: str, run_id: str, metrics: dict[str, float], step: int = 0
) -> None:
    """Log final metrics in one batch, under their MLflow names
    (`mlflow_metric_name`)."""
    now = int(time.time() * 1000)
    batch = [
        Metric(mlflow_metric_name(k), float(v), now, step) for k, v in metrics.items()
    ]
    _log_metric_batch(MlflowClient(tracking_uri), run_id, batch)


_BASELINE_METRIC = re.compile(rf"^(.*?)baseline_({'|'.join(BASELINES)})_(.+)$")


def mlflow_metric_name(name: str) -> str:
    """A metric's name in MLflow: a baseline's metrics fold under
    `baseline/<name>/` (`baseline_persistence_test_mse` ->
    `baseline/persistence/test_mse`, `backtest_baseline_linear_test_mse_mean`
    -> `baseline/linear/backtest_test_mse_mean`), so the UI draws them in
    their own chart sections, apart from the model's metrics and loss curves
    ("Model metrics"; MLflow 3.17 lists prefixed sections before it). Everything
    else, and every key of `--json` and of flow results, is unchanged."""
    found = _BASELINE_METRIC.match(name)
    if not found:
        return name
    before, baseline, rest = found.groups()
    return f"baseline/{baseline}/{before}{rest}"


class EpochMetricLogger:
    """A training hook that buffers per-epoch metrics and writes them in batches
    on a background thread.

    A batch goes out at most every `flush_seconds` (so the UI stays live). The
    training thread only appends to a list: a slow store, or a tracking server
    that is restarting while MLflow's client retries, never stalls an epoch.
    `close()` sends the rest, waits for every write and raises the first
    failure.
    """

    def __init__(self, tracking_uri: str, run_id: str, flush_seconds: float = 2.0):
        self._client = MlflowClient(tracking_uri)
        self._run_id = run_id
        self._flush_seconds = flush_seconds
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()
        self._batches: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._writer = threading.Thread(
            target=self._write, name="rnnflow-metrics", daemon=True
        )
        self._writer.start()

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, v, now, epoch) for k, v in logs.items())
        if time.monotonic() - self._last_flush >= self._flush_seconds:
            self._send()

    def close(self, raise_errors: bool = True) -> None:
        """Send what is buffered and wait until every batch is written."""
        self._send()
        self._batches.put(None)
        self._writer.join()
        if self._error is not None and raise_errors:
            raise self._error

    def _send(self) -> None:
        if self._pending:
            self._batches.put(self._pending)
            self._pending = []
        self._last_flush = time.monotonic()

    def _write(self) -> None:
        while (batch := self._batches.get()) is not None:
            if self._error is None:  # after a failure the run is incomplete anyway
                try:
                    _log_metric_batch(self._client, self._run_id, batch)
                except Exception as exc:  # raised to the caller by close()
                    self._error = exc


def log_dataset(
    tracking_uri: str,
    run_id: str,
    frame,
    name: str,
    source: str,
    digest: str,
    context: str = "training",
) -> None:
    """Record the run's input data (name, digest, source, schema) with log_inputs,
    so runs on identical data show the same digest in the MLflow UI.

    MLflow caps dataset digests at 36 characters: the first 32 hex characters of
    the sha256 are logged there (the full one belongs in a tag).
    """
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    resolvable = source.startswith(("http://", "https://"))
    origin = source if resolvable else CodeDatasetSource(tags={"uri": source})
    dataset = mlflow.data.from_pandas(
        frame, source=origin, name=name, digest=digest[:32]
    )
    entry = DatasetInput(
        private_api.dataset_entity(dataset),
        tags=[InputTag("mlflow.data.context", context)],
    )
    client = MlflowClient(tracking_uri)
    for attempt in range(3):
        try:
            client.log_inputs(run_id, datasets=[entry])
            return
        except MlflowException as exc:
            # Two runs logging the same new dataset at once (compare children on
            # Dask workers): the sqlite store checks, then inserts, so the slower
            # one hits the unique index. The row exists now; linking it works.
            if "UNIQUE constraint failed: datasets" not in str(exc) or attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))


def log_text(tracking_uri: str, run_id: str, text: str, artifact_file: str) -> None:
    """Store `text` as an artifact file."""
    MlflowClient(tracking_uri).log_text(run_id, text, artifact_file)


def log_dict(tracking_uri: str, run_id: str, data: dict, artifact_file: str) -> None:
    """Store `data` as a JSON (or YAML, by extension) artifact."""
    MlflowClient(tracking_uri).log_dict(run_id, data, artifact_file)


def log_table(tracking_uri: str, run_id: str, frame, artifact_file: str) -> None:
    """Store a DataFrame as a Parquet artifact (`artifact_file` ends .parquet)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact_file).name
        frame.to_parquet(path, index=False)
        directory = str(Path(artifact_file).parent)
        MlflowClient(tracking_uri).log_artifact(
            run_id, str(path), None if directory == "." else directory
        )


def log_figure(
    tracking_uri: str, run_id: str, figure, artifact_file: str, image_key: bool = False
) -> None:
    """Store a matplotlib figure as a PNG artifact. With `image_key`, also
    as an image under its file's stem (`plots/loss.png`: key `loss`): the
    MLflow UI's run comparison shows such images side by side for runs that
    share the key, which it never does for files in an artifact folder."""
    client = MlflowClient(tracking_uri)
    client.log_figure(run_id, figure, artifact_file)
    if image_key:
        figure.canvas.draw()
        pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3]  # (H, W, 3) uint8
        client.log_image(run_id, pixels, key=Path(artifact_file).stem, step=0)


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


def log_model(tracking_uri: str, run_id: str, name: str, flavor, **kwargs) -> str:
    """`Model.log` of `flavor` under this run, filed in the run's own experiment;
    return the model URI. `kwargs` go to the flavor's `save_model`.

    Left to itself, `Model.log` files the LoggedModel under the fluent default
    experiment 0, with artifacts in ./mlruns; so it is created here first.
    """
    from mlflow.models import Model

    client = MlflowClient(tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id)
    with fluent_store(tracking_uri):  # Model.log resolves the store globally
        info = Model.log(
            artifact_path=None,
            name=name,
            flavor=flavor,
            run_id=run_id,
            model_id=logged.model_id,
            **kwargs,
        )
    client.finalize_logged_model(logged.model_id, "READY")
    return info.model_uri


def log_keras_model(tracking_uri: str, run_id: str, model, name: str = "model") -> str:
    """Log `model` in the `mlflow.keras` flavor under this run; return its URI.

    Requirements are pinned from the running versions instead of MLflow's
    inference, which would load the model again in a subprocess.
    """
    from mlflow.models import infer_signature

    from components.models import predict_all
    from components.tracking.provenance import pinned

    example = np.zeros((1, *model.input_shape[1:]), dtype=np.float32)  # (1, L, C)
    return log_model(
        tracking_uri,
        run_id,
        name,
        mlflow.keras,
        model=model,
        signature=infer_signature(example, predict_all(model, example).astype("float32")),
        pip_requirements=pinned(["tensorflow", "keras"]),
    )


def safe_name(text: str) -> str:
    """A file- and URI-safe version of user text: no separators, no `..`, no scheme."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "unnamed"


def _log_metric_batch(client: MlflowClient, run_id: str, batch: list[Metric]) -> None:
    for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=batch[i : i + _MAX_METRICS_PER_BATCH])
