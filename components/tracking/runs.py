"""Experiments and runs: created with their artifact location set, named and
tagged, ended FINISHED, FAILED or KILLED (never left RUNNING), and stale ones
closed. Every function takes the tracking URI and `run_id` explicitly:
MLflow's active run is per thread, and Prefect runs tasks on threads, so
nothing in components.tracking relies on the fluent "active run".
"""

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from components.tracking.store import artifact_root

# The MLflow UI opens an experiment of this kind in its "Model training" view
# (runs, charts) instead of the GenAI one (traces).
EXPERIMENT_KIND = "mlflow.experimentKind"


# The experiment's saved runs view (MLflow 3.17 "Views"): an experiment tag
# `mlflow.sharedViewState.<key>` holding the runs page's state as JSON, opened
# by `?viewStateShareKey=<key>` (the UI's own share links use the same).
RUNS_VIEW = "rnnflow"
_VIEW_TAG = "mlflow.sharedViewState."


def ui_link(base_url: str, experiment_id: str, charts: bool = False) -> str:
    """A link that opens the experiment's runs in the "Model training" view,
    through rnnflow's saved view when the experiment has one (`save_runs_view`:
    the deciding metrics as columns, sorted by the rank metric); `charts`
    opens the chart view that compares the runs, the deciding metrics' bars
    first."""
    mode = "&compareRunsMode=CHART" if charts else ""
    return (
        f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?"
        f"viewStateShareKey={RUNS_VIEW}&workflowType=machine_learning{mode}"
    )


# The chart view's first section (MLflow sorts generated sections by name and
# puts its "Model metrics" last; a reordered one keeps its place).
DECIDING_SECTION = "Deciding metrics"


def save_runs_view(tracking_uri: str, experiment_id: str, columns: list[str]) -> None:
    """Store the runs view `ui_link` opens: `columns` (metric names as MLflow
    shows them, the first the rank metric) shown and the runs sorted by the
    first, lowest first; in the chart view, a first section of one bar chart
    per column, in that order (MLflow adds every other metric's chart after
    it). Rewritten on every run, so it follows the config."""
    import json
    import time

    keys = [f"metrics.`{name}`" for name in columns]
    section = f"{RUNS_VIEW}-deciding"
    charts = [
        {"uuid": f"{RUNS_VIEW}-bar-{i}", "type": "BAR", "runsCountToCompare": 10,
         "metricSectionId": section, "deleted": False, "isGenerated": False,
         "metricKey": name, "displayName": name}
        for i, name in enumerate(columns)
    ]  # fmt: skip
    sections = [{"uuid": section, "name": DECIDING_SECTION, "display": True,
                 "isReordered": True, "deleted": False, "isGenerated": False}]  # fmt: skip
    state = {
        "orderByKey": keys[0], "orderByAsc": True, "selectedColumns": keys,
        "compareRunCharts": charts, "compareRunSections": sections,
        "isAccordionReordered": True,
    }  # fmt: skip
    now = int(time.time() * 1000)
    envelope = {"name": RUNS_VIEW, "createdAt": now, "updatedAt": now}
    envelope["state"] = json.dumps(state)
    MlflowClient(tracking_uri).set_experiment_tag(
        experiment_id, f"{_VIEW_TAG}{RUNS_VIEW}", json.dumps(envelope)
    )


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Id of experiment `name`, created (with an explicit artifact folder, a
    description and the forecasting kind) if new."""
    client = MlflowClient(tracking_uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if EXPERIMENT_KIND not in existing.tags:  # made before rnnflow tagged them
            client.set_experiment_tag(
                existing.experiment_id, EXPERIMENT_KIND, "forecasting"
            )
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
        filter_string=f"tags.`{tag}` = '{value}' and attributes.status = 'RUNNING'",
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


def safe_name(text: str) -> str:
    """A file- and URI-safe version of user text: no separators, no `..`, no scheme."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "unnamed"
