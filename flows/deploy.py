"""Deployments: scheduled retraining, forecasts and monitoring, and
train-on-demand, on a Prefect server and worker that outlive the command.

`rnnflow deploy EXPERIMENT --cron ... --forecast-cron ... --monitor-cron ...`
registers four deployments on the lasting Prefect server
(`flows.prefect_server`: yours through PREFECT_API_URL, else rnnflow's own,
started once in the background) in the process work pool `rnnflow`, and
makes sure a worker of that pool runs. Each flow run then starts in a fresh
process in the directory `rnnflow deploy` ran in, with its `MLFLOW_*` and
`RNNFLOW_*` variables, and prints what the CLI prints.

The deployed flows take the experiment by name or path plus dotted overrides,
not a resolved config: the YAML is read when each run starts (edits apply to
the next run) and secrets in it (a URL's credentials) never become Prefect
parameters.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron

from components.config.loading import load_experiment
from components.config.paths import resolve_experiment_path
from flows.prefect_server import POOL
from flows.server import ENV_PREFIXES, PROJECT


def _run_name(prefix: str):
    """Flow run names like `retrain-gas_furnace`, also when given a file path."""

    def name() -> str:
        from prefect.runtime import flow_run

        experiment = flow_run.parameters.get("experiment") or "default"
        return f"{prefix}-{Path(experiment).stem}"

    return name


def _quiet() -> None:
    """TensorFlow imported without its C++ start-up notices (a deployment's
    flow run is a fresh process: the first import happens here)."""
    from flows import terminal

    terminal.quiet_tensorflow()


@flow(name="rnnflow-retrain-experiment", flow_run_name=_run_name("retrain"),
      log_prints=True)  # fmt: skip
def retrain_experiment(experiment: str = "default", overrides: list[str] | None = None):
    """Load the experiment now, then retrain it once (see `retrain_flow`)."""
    _quiet()
    from flows.retrain import retrain_flow

    result = retrain_flow(load_experiment(experiment, overrides))
    print(result.to_text())  # the decision itself the flow logs
    return result.to_json()


@flow(name="rnnflow-train-experiment", flow_run_name=_run_name("train"),
      log_prints=True)  # fmt: skip
def train_experiment(experiment: str = "default", overrides: list[str] | None = None):
    """Load the experiment now, then train it once; returns run id and metrics."""
    _quiet()
    from flows.train import train_flow

    result = train_flow(load_experiment(experiment, overrides))
    print(result.to_text())
    keys = ("run_id", "experiment", "status", "metrics", "model_uri", "forecaster_uri")
    return {k: getattr(result, k) for k in keys}


@flow(name="rnnflow-forecast-experiment", flow_run_name=_run_name("forecast"),
      log_prints=True)  # fmt: skip
def forecast_experiment(experiment: str = "default", overrides: list[str] | None = None):
    """Load the experiment now, then forecast every series with the champion
    into the forecast store (see `forecast_flow`)."""
    _quiet()
    from flows.forecast import forecast_flow

    result = forecast_flow(load_experiment(experiment, overrides))
    print(result.to_text())
    return {k: v for k, v in result.to_json().items() if k != "forecast"}


@flow(name="rnnflow-monitor-experiment", flow_run_name=_run_name("monitor"),
      log_prints=True)  # fmt: skip
def monitor_experiment(experiment: str = "default", overrides: list[str] | None = None):
    """Load the experiment now, then score the kept forecasts against the
    actuals; a drift starts the retrain deployment (see `monitor_flow`)."""
    _quiet()
    from flows.monitor import monitor_flow

    result = monitor_flow(load_experiment(experiment, overrides))
    print(result.to_text())
    return result.to_json()


@dataclass(frozen=True)
class Schedules:
    """A cron per scheduled deployment (None: triggered by hand only)."""

    retrain: str | None = None
    forecast: str | None = None
    monitor: str | None = None
    timezone: str = "UTC"


_FLOWS = {
    "retrain": (retrain_experiment, "Retrain {name} and promote only a better model."),
    "forecast": (forecast_experiment, (
        "Forecast every series of {name} with the champion into the forecast store."
    )),
    "monitor": (monitor_experiment, (
        "Score {name}'s kept forecasts against the actuals; retrain when they drift."
    )),
    "train": (train_experiment, "Train {name} once (override parameters freely)."),
}  # fmt: skip


def deployments(experiment: str, overrides: list[str], schedules: Schedules) -> list:
    """`retrain-NAME`, `forecast-NAME`, `monitor-NAME` (each on its cron, one
    run at a time) and `train-NAME` (by hand), in work pool `rnnflow`,
    pinned to the experiment file's absolute path and this directory."""
    config = load_experiment(experiment, overrides)  # fail here, not at 3 am
    parameters = {
        "experiment": str(resolve_experiment_path(experiment).resolve()),
        "overrides": list(overrides),
    }
    found = []
    for kind, (flow_, description) in _FLOWS.items():
        cron = getattr(schedules, kind, None)
        found.append(
            flow_.to_deployment(
                name=f"{kind}-{config.name}",
                schedules=[Cron(cron, timezone=schedules.timezone)] if cron else None,
                parameters=parameters,
                concurrency_limit=1 if kind != "train" else None,
                tags=["rnnflow", config.name],
                entrypoint_type=EntrypointType.MODULE_PATH,
                description=description.format(name=config.name),
                work_pool_name=POOL,
                job_variables=job_variables(),
            )
        )
    return found


def job_variables() -> dict:
    """Where and with what a deployed flow run starts: this directory, the
    project importable, TensorFlow quiet, and this shell's `MLFLOW_*` /
    `RNNFLOW_*` variables (the stores it logs to)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    path = os.pathsep.join(p for p in (str(PROJECT), os.environ.get("PYTHONPATH")) if p)
    env |= {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path}
    return {"env": env, "working_dir": os.getcwd()}


def register(experiment: str, overrides: list[str], schedules: Schedules) -> list[str]:
    """Create the work pool if needed and register (or update) the
    deployments on the Prefect API in use; their full names."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(POOL)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=POOL,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="rnnflow's deployments (`rnnflow deploy`)",
                )
            )
    names = []
    for deployment in deployments(experiment, overrides, schedules):
        deployment.apply(work_pool_name=POOL)
        names.append(deployment.full_name)
    return names
