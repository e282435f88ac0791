"""A streamed run's servable parts (`data.stream: true`): its Keras network,
each series' training statistics and its window, read back from MLflow.

A streamed panel has no pyfunc forecaster (its input would be the whole
panel); `rnnflow predict` reads the panel file by file with these instead.
"""

import os
import tempfile
from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.common.errors import TrackingError
from components.config.schema import WindowSpec
from components.data.preprocess import SeriesNormalizer
from components.tracking.store import fluent_store

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # quiet terminal

STREAM_TAG = "rnnflow.stream"
MODEL_TAG = "rnnflow.keras_model"


@dataclass(frozen=True)
class StreamedModel:
    run_id: str
    model_uri: str
    model: object  # keras.Model
    normalizer: SeriesNormalizer
    window: WindowSpec


def newest_streamed_run(tracking_uri: str, experiment: str) -> str:
    """The newest FINISHED streamed run of `experiment`.

    Raises:
        TrackingError: there is none (naming the experiment and what to run).
    """
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs(
        [found.experiment_id],
        f"tags.`{STREAM_TAG}` = 'true' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )  # fmt: skip
    if not runs:
        raise TrackingError(
            f"experiment {experiment!r} has no finished streamed run: train one "
            "first (`rnnflow train` with `data.stream: true`)."
        )
    return runs[0].info.run_id


def load_streamed(tracking_uri: str, run_id: str) -> StreamedModel:
    """The network, statistics and window of streamed run `run_id`.

    Raises:
        TrackingError: the run is not a finished streamed run, or its parts
            cannot be read.
    """
    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise TrackingError(f"run {run_id}: {exc.message}") from None
    model_uri = run.data.tags.get(MODEL_TAG)
    if run.data.tags.get(STREAM_TAG) != "true" or not model_uri:
        raise TrackingError(
            f"run {run_id} is not a finished streamed run (no {MODEL_TAG} tag): "
            "predict a panel trained in memory with its forecaster instead."
        )
    params = run.data.params
    window = WindowSpec(
        input_width=int(params["window.input_width"]),
        horizon=int(params["window.horizon"]),
        offset=int(params.get("window.offset", 0)),
    )
    from components.models import (  # noqa: F401  rnnflow's layers, registered
        ensemble, layers, quantiles, series_id, skip, window_norm,
    )  # fmt: skip

    try:
        with fluent_store(tracking_uri), tempfile.TemporaryDirectory() as scratch:
            model = mlflow.keras.load_model(model_uri)
            table = pd.read_parquet(
                client.download_artifacts(run_id, "series_scaling.parquet", scratch)
            )
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"run {run_id}: cannot read its model: {exc}") from None
    return StreamedModel(
        run_id, model_uri, model, SeriesNormalizer.from_table(table), window
    )
