"""Logging into a run by its id: params, metrics (batched, and per epoch from a
background writer so training never waits on the store), datasets, text,
tables and figures. MLflow's active run is per thread and Prefect runs tasks on
threads, so every function takes the tracking URI and the run id.
"""

import queue
import re
import threading
import time
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from components.common import private_api
from components.evaluation.metrics import BASELINES

_MAX_PARAMS_PER_BATCH = 100


_MAX_METRICS_PER_BATCH = 1000


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

    def __init__(
        self, tracking_uri: str, run_id: str, flush_seconds: float = 2.0, prefix: str = ""
    ):
        self._client = MlflowClient(tracking_uri)
        self._run_id = run_id
        self._prefix = prefix  # e.g. `member_1/`: an ensemble member's curves
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
        self._pending.extend(
            Metric(f"{self._prefix}{k}", v, now, epoch) for k, v in logs.items()
        )
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


def _log_metric_batch(client: MlflowClient, run_id: str, batch: list[Metric]) -> None:
    for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=batch[i : i + _MAX_METRICS_PER_BATCH])
