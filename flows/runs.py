"""The run around a training: open the MLflow run with its tags and the
runs view, and fit with per-epoch metrics streamed to it. Shared by the
in-memory training flow (`flows.train`) and the streamed one
(`flows.train_stream`)."""

import os
import socket
import sys

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from components import tracking
from components.common.redact import redact_url
from components.config.schema import ExperimentConfig, TrainSpec
from components.data import ingest
from components.evaluation import intervals
from components.tracking import provenance
from components.tracking.describe import run_title
from components.training import checkpoint
from components.training import fit as training
from flows import terminal
from flows.terminal import LIVE_PROGRESS

_task = task(cache_policy=NO_CACHE)


@_task
def open_run(
    config: ExperimentConfig,
    series: ingest.LoadedSeries,
    tracking_uri: str,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    role: str = "train",
    kinds: list[str] | None = None,
) -> str:
    """Start the MLflow run with its identifying tags; nest it under a parent.

    `role` (train, compare, child, tune, trial, retrain) is tag
    `rnnflow.role`, for filtering and grouping in the MLflow UI; a run over
    several `kinds` (a compare parent) is tagged with all of them, and with
    no single seed."""
    single = kinds is None
    tags = {
        "model_kind": config.model.kind if single else "+".join(kinds),
        "rnnflow.role": role,
        "mlflow.source.name": f"rnnflow {_COMMAND.get(role, role)} {config.name}",
        "mlflow.user": _user(),
        "data_sha256": series.sha256,
        "data_digest": series.digest,
        "data_source": series.source,
        "prefect_flow_run_id": str(flow_run.id or ""),
        **provenance.git_commit(),
        "rnnflow_experiment": config.name,
        # Which process trained it: with `--executor dask`, a worker's.
        "rnnflow_worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    if single:
        tags["rnnflow.seed"] = str(config.train.seed)
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run_name = run_name or run_title(config)
    run_id = tracking.start_run(tracking_uri, config.experiment_name, run_name, tags)
    experiment_id = tracking.ensure_experiment(tracking_uri, config.experiment_name)
    tracking.save_runs_view(tracking_uri, experiment_id, deciding_columns(config))
    get_run_logger().info(
        "MLflow run %s (%s) in %s", run_id, run_name, redact_url(tracking_uri)
    )
    return run_id


_COMMAND = {"child": "compare", "trial": "tune"}  # the command that opens them


def deciding_columns(config: ExperimentConfig) -> list[str]:
    """The runs table's columns in the MLflow UI: the rank metric first (the
    sort), the model's scale-free scores, persistence's rank metric beside it,
    and the intervals' coverage where there are any."""
    from components.tracking.log import mlflow_metric_name

    rank = config.rank_metric
    columns = [rank, "test_mase", "test_smape", f"baseline_persistence_{rank}"]
    levels = config.evaluate.intervals if not config.model.quantiles else []
    columns += [f"test_coverage_{intervals.level_name(v)}" for v in levels]
    unique = list(dict.fromkeys(columns))
    return [mlflow_metric_name(name) for name in unique]


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


@_task
def fit(
    model,
    datasets: dict,
    spec: TrainSpec,
    tracking_uri: str,
    run_id: str,
    folder: checkpoint.CheckpointFolder | None = None,
    resume: checkpoint.TrainingState | None = None,
    prefix: str = "",
):
    """Train with per-epoch metrics streamed to MLflow (named `{prefix}loss`
    ...), progress to the log and the state saved to `folder` after every
    epoch."""
    epoch_logger = tracking.EpochMetricLogger(tracking_uri, run_id, prefix=prefix)
    live = os.environ.get(LIVE_PROGRESS) and spec.verbose_every
    if live:  # the CLI on a terminal: one line that updates
        progress = terminal.LiveProgress(sys.stderr, spec.epochs)
    else:
        progress = terminal.progress_printer(
            get_run_logger().info, spec.verbose_every, spec.epochs
        )
    try:
        result = training.fit_model(
            model,
            datasets["train"],
            datasets.get("val"),
            spec,
            hooks=[epoch_logger, progress],
            checkpoint=folder,
            resume=resume,
        )
    except BaseException:
        epoch_logger.close(raise_errors=False)  # keep the training's own error
        raise
    finally:
        if live:
            progress.close()
    epoch_logger.close()
    return result
