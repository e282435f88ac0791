"""Deployments: scheduled retraining and train-on-demand, served by Prefect.

The deployed flows take the experiment by name or path plus dotted overrides,
not a resolved config: the YAML is read when each run starts (edits apply to
the next run) and secrets in it (a URL's credentials) never become Prefect
parameters.

Quick path: `rnnflow deploy EXPERIMENT --cron "0 3 * * *"` keeps a process
serving both deployments (`prefect.serve`). Production path: the same flows in
a `prefect.yaml` with a process work pool and `prefect worker start` (README).
"""

from pathlib import Path

from prefect import flow, serve
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron

from components.config.loading import load_experiment
from components.config.paths import resolve_experiment_path
from flows.retrain import retrain_flow
from flows.train import train_flow


def _run_name(prefix: str):
    """Flow run names like `retrain-gas_furnace`, also when given a file path."""

    def name() -> str:
        from prefect.runtime import flow_run

        experiment = flow_run.parameters.get("experiment") or "default"
        return f"{prefix}-{Path(experiment).stem}"

    return name


@flow(name="rnnflow-retrain-experiment", flow_run_name=_run_name("retrain"))
def retrain_experiment(experiment: str = "default", overrides: list[str] | None = None):
    """Load the experiment now, then retrain it once (see `retrain_flow`)."""
    return retrain_flow(load_experiment(experiment, overrides)).to_json()


@flow(name="rnnflow-train-experiment", flow_run_name=_run_name("train"))
def train_experiment(experiment: str = "default", overrides: list[str] | None = None):
    """Load the experiment now, then train it once; returns run id and metrics."""
    result = train_flow(load_experiment(experiment, overrides))
    keys = ("run_id", "experiment", "status", "metrics", "model_uri", "forecaster_uri")
    return {k: getattr(result, k) for k in keys}


def deployments(
    experiment: str, overrides: list[str], cron: str, timezone: str = "UTC"
) -> list:
    """`retrain-NAME` on the cron schedule (one run at a time) and `train-NAME`
    to trigger by hand, both pinned to the experiment file's absolute path."""
    config = load_experiment(experiment, overrides)  # fail here, not at 3 am
    parameters = {
        "experiment": str(resolve_experiment_path(experiment).resolve()),
        "overrides": list(overrides),
    }
    tags = ["rnnflow", config.name]
    return [
        retrain_experiment.to_deployment(
            name=f"retrain-{config.name}",
            schedules=[Cron(cron, timezone=timezone)],
            parameters=parameters,
            concurrency_limit=1,
            tags=tags,
            entrypoint_type=EntrypointType.MODULE_PATH,
            description=f"Retrain {config.name} and promote only a better model.",
        ),
        train_experiment.to_deployment(
            name=f"train-{config.name}",
            parameters=parameters,
            tags=tags,
            entrypoint_type=EntrypointType.MODULE_PATH,
            description=f"Train {config.name} once (override parameters freely).",
        ),
    ]


def serve_deployments(
    experiment: str, overrides: list[str], cron: str, timezone: str = "UTC"
) -> None:
    """Register both deployments and run their flow runs until interrupted."""
    serve(*deployments(experiment, overrides, cron, timezone))
