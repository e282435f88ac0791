"""The tune flow: an Optuna search over one architecture's space (see
`components.training.search`), every trial a nested MLflow run, the best settings
written as a new experiment file.

Trials are scored on the validation split only (best `val_loss`; early
stopping and pruning read it too). The test split is never evaluated here: run
`rnnflow train` on the written file to see the tuned model on it.

Example:
    >>> from components.config import load_experiment
    >>> result = tune_flow(load_experiment("gas_furnace"), "gru", trials=20)
    >>> result.experiment_file
    'conf/experiments/gas_furnace_gru_tuned.yaml'
"""

import math
from pathlib import Path

import numpy as np
import optuna
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from components import tracking
from components.common.errors import ConfigError, TrainingError
from components.config.loading import to_yaml, with_settings
from components.config.paths import conf_dirs
from components.config.schema import ExperimentConfig
from components.tracking.params import flatten
from components.training import fit as training
from components.training import search
from flows.cluster import dask_runner
from flows.results import TuneResult
from flows.steps import (
    PreparedData,
    build,
    choose_settings,
    make_datasets,
    prepare_data,
)
from flows.train import open_run

TRIAL_TAG = "rnnflow.trial"  # parent run / trial number


@flow(name="rnnflow-tune", flow_run_name="{config.name}-tune-{kind}")
def tune_flow(
    config: ExperimentConfig, kind: str, trials: int, output: str | None = None
) -> TuneResult:
    """Search `kind`'s space for `trials` trials; write the best as an experiment."""
    config = with_settings(config, {"model.kind": kind, "evaluate.backtest.folds": 0})
    if trials < 1:
        raise ConfigError(f"`--trials` expected a positive integer, got {trials}.")
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(tracking_uri)
    data = prepare_data(config)
    if not len(data.scaled["val"].inputs):
        raise ConfigError(
            f"{config.name}: tuning scores trials on the validation split, but "
            f"`split.val` is {config.split.val}. Set `split.val` (rows or a fraction)."
        )
    max_width = _max_input_width(data, config)
    parent = open_run(
        config, data.series, tracking_uri, f"tune {kind} · {config.name}", role="tune"
    )
    logger = get_run_logger()
    with tracking.failing_marks_run(tracking_uri, parent):
        tracking.log_params(
            tracking_uri,
            parent,
            {**flatten(config), "tune.kind": kind, "tune.trials": trials},
        )
        study = search.new_study(config.train.seed)
        outcomes = []
        in_flight = config.cluster.workers if config.cluster.on_dask else 1
        for first in range(0, trials, in_flight):
            asked = [study.ask() for _ in range(min(in_flight, trials - first))]
            chosen = [search.suggest(trial, config, max_width) for trial in asked]
            if config.cluster.on_dask:
                found = trials_on_dask(
                    config, data.series, tracking_uri, parent, chosen, first
                )
            else:
                found = [run_trial(with_settings(config, chosen[0]), data, tracking_uri,
                                   parent, asked[0], first)]  # fmt: skip
            for trial, settings, outcome in zip(asked, chosen, found):
                outcome["settings"] = settings
                outcomes.append(outcome)
                if outcome["state"] == "complete":
                    study.tell(trial, outcome["value"])
                else:
                    state = optuna.trial.TrialState[outcome["state"].upper()]
                    study.tell(trial, state=state)
                logger.info("trial %d: %s", outcome["number"], _describe(outcome))
        complete = [o for o in outcomes if o["state"] == "complete"]
        if not complete:
            raise TrainingError(
                "no trial finished (all pruned or failed); see the runs"
            )
        best = min(complete, key=lambda o: o["value"])
        tuned = with_settings(config, best["settings"])
        tuned = tuned.model_copy(update={"name": f"{config.name}_{kind}_tuned"})
        path = _write_experiment(tuned, output)
        tracking.log_text(tracking_uri, parent, to_yaml(tuned), "best_experiment.yaml")
        tracking.log_metrics(tracking_uri, parent, {"best_val_loss": best["value"]})
        tracking.set_tags(
            tracking_uri,
            parent,
            {"best_trial_run": best["run_id"], "best_trial": best["number"]},
        )
        tracking.finish_run(tracking_uri, parent)
    logger.info(
        "best trial %d: val_loss %.4f -> %s", best["number"], best["value"], path
    )
    return TuneResult(
        parent_run_id=parent,
        experiment=config.experiment_name,
        tracking_uri=tracking_uri,
        best={k: best[k] for k in ("number", "run_id", "value", "settings")},
        trials=[
            {k: o[k] for k in ("number", "run_id", "state", "value")} for o in outcomes
        ],
        experiment_file=str(path),
    )


def trials_on_dask(
    config: ExperimentConfig, series, tracking_uri: str, parent: str,
    chosen: list[dict], first: int,
) -> list[dict]:
    """One batch of trials (`chosen` settings, numbered from `first`), each
    trained in a Dask worker process: on the cluster at `cluster.address`,
    else a local one of `cluster.workers` processes. Not pruned (the pruner's
    study lives here); a trial whose worker dies is run again on another,
    its first run closed KILLED."""
    spec = config.cluster
    where = spec.address or f"a local cluster of {spec.workers} processes"
    get_run_logger().info(
        "tune: trials %d-%d on Dask (%s)", first, first + len(chosen) - 1, where
    )

    @flow(name="rnnflow-tune-trials", flow_run_name="tune-trials-{first}")
    def on_dask(first: int):  # the data stays out of the flow's (API) parameters
        futures = [
            trial_on_worker.submit(
                with_settings(config, settings), series, tracking_uri, parent, first + i
            )
            for i, settings in enumerate(chosen)
        ]
        return [future.result() for future in futures]

    return on_dask.with_options(task_runner=dask_runner(spec.address, spec.workers))(first)


@task(cache_policy=NO_CACHE, task_run_name="trial-{number}")
def trial_on_worker(
    config: ExperimentConfig, series, tracking_uri: str, parent: str, number: int
) -> dict:
    """A trial in a worker: its own split and statistics from the shipped
    series; a run this trial left RUNNING in a worker that died is closed
    KILLED first."""
    data = prepare_data(config, series)
    return _trial(config, data, tracking_uri, parent, None, number)


@task(cache_policy=NO_CACHE, task_run_name="trial-{number}")
def run_trial(
    config: ExperimentConfig,
    data: PreparedData,
    tracking_uri: str,
    parent: str,
    trial: optuna.Trial,
    number: int,
) -> dict:
    """Train one trial's config in its own nested run; score it by the best
    validation loss. Pruned trials end KILLED, failed ones FAILED."""
    return _trial(config, data, tracking_uri, parent, trial, number)


def _trial(config, data, tracking_uri, parent, trial, number) -> dict:
    run_id = open_run(
        config, data.series, tracking_uri, f"trial {number} · {config.model.kind}",
        parent, role="trial",
    )  # fmt: skip
    key = f"{parent}/{number}"  # the same trial tried again (its worker died)
    tracking.set_tags(tracking_uri, run_id, {TRIAL_TAG: key})
    tracking.kill_stale_runs(tracking_uri, config.experiment_name, TRIAL_TAG, key, run_id)
    outcome = {"number": number, "run_id": run_id, "value": None}
    try:
        with tracking.failing_marks_run(tracking_uri, run_id):
            value = _train_trial(config, data, tracking_uri, run_id, trial, number)
    except TrainingError as exc:  # the run ended FAILED with the reason
        get_run_logger().warning("trial %d failed: %s", number, exc)
        return {**outcome, "state": "fail"}
    if value is None:
        return {**outcome, "state": "pruned"}
    return {**outcome, "state": "complete", "value": value}


def _train_trial(config, data, tracking_uri, run_id, trial, number) -> float | None:
    """The best val_loss, or None when the pruner stopped the trial (its run
    then ends KILLED)."""
    tracking.log_params(
        tracking_uri, run_id, {**flatten(config), "trial.number": number}
    )
    if data.series.layout is not None:
        # A panel's validation and test parts carry `input_width` rows of
        # context before their cut: a trial's own width needs its own split.
        data = prepare_data(config, data.series)
    datasets = make_datasets(data.scaled, config.window, config.train)
    spec, _ = choose_settings(
        config.model, config.window, data.scaled, data.target_positions
    )
    model = build(
        spec, config.train, config.window, data.scaled["train"], data.target_positions
    )
    epochs = tracking.EpochMetricLogger(tracking_uri, run_id)
    pruner = [search.PruneOnValLoss(trial)] if trial is not None else []
    try:
        result = training.fit_model(
            model, datasets["train"], datasets["val"], config.train,
            hooks=[epochs, *pruner],
        )  # fmt: skip
    except optuna.TrialPruned as pruned:
        epochs.close()
        tracking.finish_run(tracking_uri, run_id, "KILLED", error=str(pruned))
        return None
    except BaseException:
        epochs.close(raise_errors=False)  # keep the training's own error
        raise
    epochs.close()
    value = min(result.history["val_loss"])
    if not math.isfinite(value):
        raise TrainingError(
            f"trial {number}: the validation loss is not finite ({value}); "
            "the trial cannot be ranked"
        )
    tracking.log_metrics(
        tracking_uri,
        run_id,
        {
            "best_val_loss": value,
            "train_seconds": result.seconds,
            "epochs_trained": result.epochs_trained,
            "parameters": model.count_params(),
        },
    )
    tracking.finish_run(tracking_uri, run_id)
    return value


def _max_input_width(data: PreparedData, config: ExperimentConfig) -> int:
    """The widest window every split still holds (a window spans
    input_width + offset + horizon rows); on a panel, the widest the longest
    series' training rows hold (validation and test windows read their
    inputs from before the cut)."""
    if data.series.layout is not None:
        longest = int(np.max(np.diff(data.scaled["train"].bounds)))
        return longest - config.window.offset - config.window.horizon
    shortest = min(len(part.inputs) for part in data.scaled.values())
    return shortest - config.window.offset - config.window.horizon


def _write_experiment(config: ExperimentConfig, output: str | None) -> Path:
    path = (
        Path(output)
        if output
        else conf_dirs()[0] / "experiments" / f"{config.name}.yaml"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Written by `rnnflow tune`: the best of the search over "
        f"`{config.model.kind}` (validation loss only; the test split was not seen).\n"
    )
    path.write_text(header + to_yaml(config))
    return path


def _describe(outcome: dict) -> str:
    if outcome["state"] == "complete":
        return f"val_loss {outcome['value']:.4f} ({outcome['settings']})"
    return f"{outcome['state']} ({outcome['settings']})"
