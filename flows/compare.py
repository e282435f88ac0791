"""The compare flow: several architectures (and seeds) on exactly the same data,
one parent MLflow run with a child run per training, and a leaderboard.

Data is ingested, split and normalized once; every child reuses it, so windows,
statistics and test rows are identical across models. A child whose training
fails (a non-finite loss, say) ends FAILED and drops out of the leaderboard;
the others go on.

Children train one after another by default. `run_compare(..., executor="dask")`
fans them out through Prefect's Dask task runner: each child is a task that
trains in its own Dask worker process (a local cluster, or an existing one at
`dask_address`) and logs to the same MLflow store.

Example:
    >>> from components.config import load_experiment
    >>> result = run_compare(load_experiment("gas_furnace"), ["mlp", "gru"], seeds=3)
    >>> result.leaderboard[0]["model"]
    'gru'
"""

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from components import tracking
from components.common.errors import ConfigError, TrainingError
from components.config.loading import to_yaml
from components.config.schema import ExperimentConfig
from components.evaluation import leaderboard, plots, quality
from components.tracking.params import flatten
from flows.cluster import dask_runner
from flows.results import CompareResult
from flows.steps import PreparedData, prepare_data
from flows.train import open_run, train_in_run

EXECUTORS = ("sequential", "dask")
CHILD_TAG = "rnnflow.child"  # parent run / kind / seed


def run_compare(
    config: ExperimentConfig,
    models: list[str],
    seeds: int = 1,
    executor: str = "sequential",
    dask_address: str | None = None,
    dask_workers: int = 2,
) -> dict:
    """`compare_flow` on the chosen executor: `sequential` trains children one
    after another in this process; `dask` submits each to a Dask worker (a
    local cluster of `dask_workers` processes, or the cluster at `dask_address`)."""
    if executor == "sequential":
        return compare_flow(config, models, seeds)
    if executor != "dask":
        raise ConfigError(
            f"Received an invalid executor {executor!r}, expected one of {EXECUTORS}."
        )
    runner = dask_runner(dask_address, dask_workers)
    return compare_flow.with_options(task_runner=runner)(
        config, models, seeds, fan_out=True
    )


@flow(name="rnnflow-compare", flow_run_name="{config.name}-compare")
def compare_flow(
    config: ExperimentConfig, models: list[str], seeds: int = 1, fan_out: bool = False
) -> CompareResult:
    """Train every model in `models` with `seeds` seeds; rank them with baselines.

    With `fan_out`, children are submitted to the flow's task runner (all at
    once) instead of run one after another.
    """
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(tracking_uri)
    data = prepare_data(config)
    parent = open_run(
        config, data.series, tracking_uri, run_name=f"compare · {config.name}",
        role="compare", kinds=models,
    )  # fmt: skip
    with tracking.failing_marks_run(tracking_uri, parent):
        tracking.log_params(
            tracking_uri,
            parent,
            {
                **{k: v for k, v in flatten(config, for_kind=False).items()
                   if k not in ("model.kind", "train.seed")},  # one per child
                "compare.models": models,
                "compare.seeds": seeds,
            },  # fmt: skip
        )
        tracking.log_text(tracking_uri, parent, to_yaml(config), "config.yaml")
        plan = [
            (kind, seed)
            for kind in models
            for seed in range(config.train.seed, config.train.seed + seeds)
        ]
        if fan_out:
            futures = [
                train_child.submit(config, kind, seed, data, tracking_uri, parent)
                for kind, seed in plan
            ]
            outcomes = (future.result() for future in futures)
        else:
            outcomes = (
                train_child(config, kind, seed, data, tracking_uri, parent)
                for kind, seed in plan
            )
        results = []
        for done, child in enumerate(outcomes, start=1):
            _report_child(done, plan, child, config.rank_metric)
            results.append(child)
        children = [child for child in results if child]
        if not children:
            raise TrainingError("every child training failed; see the child runs")
        scored_on = SCORED_ON[leaderboard.scored_on(children)]
        board = rank(
            children, data, tracking_uri, parent, scored_on, config.rank_metric
        )
        warnings = _check_quality(children, tracking_uri, parent, config.data.is_panel)
        tracking.finish_run(tracking_uri, parent)
    return CompareResult(
        parent_run_id=parent,
        scored_on=scored_on,
        ranked_by=config.rank_metric,
        experiment=config.experiment_name,
        tracking_uri=tracking_uri,
        leaderboard=_as_records(board),
        warnings=warnings,
        experiment_id=tracking.ensure_experiment(tracking_uri, config.experiment_name),
    )


def _report_child(done: int, plan: list, child: dict | None, metric: str) -> None:
    """One line per finished child: `[3/8] gru · seed 43: test_mse 0.0150
    (4.2 s)`, so a long comparison shows where it is."""
    kind, seed = plan[done - 1]
    head = f"[{done}/{len(plan)}] {kind} · seed {seed}"
    if child is None:
        get_run_logger().info("%s: failed (see its run)", head)
        return
    metrics = child["metrics"]
    get_run_logger().info(
        "%s: %s %.4f (%.1f s)", head, metric, leaderboard.score(metrics, metric),
        metrics.get("train_seconds", float("nan")),
    )  # fmt: skip


def _check_quality(
    children: list[dict], tracking_uri: str, parent: str, panel: bool = False
) -> dict:
    """The guard rail per kind (mean over seeds, validation split): warnings
    by kind, logged and tagged on the parent (`quality_warning.<kind>`)."""
    checks = quality.check_each_kind(
        [(c["model"], c["metrics"]) for c in children], quality.unit_for(panel)
    )
    warnings = {kind: c.message for kind, c in checks.items() if c.message}
    for message in warnings.values():
        get_run_logger().warning("%s", message)
    tags = {f"quality_warning.{kind}": message for kind, message in warnings.items()}
    tags["quality_check"] = "fail" if warnings else "pass"
    tracking.set_tags(tracking_uri, parent, tags)
    return warnings


@task(cache_policy=NO_CACHE, task_run_name="train-{kind}-seed{seed}")
def train_child(
    config: ExperimentConfig,
    kind: str,
    seed: int,
    data: PreparedData,
    tracking_uri: str,
    parent: str,
) -> dict | None:
    """One child run: the full training flow's steps, nested under `parent`.

    Returns what the leaderboard needs (picklable: it may come back from a Dask
    worker), or None when the training failed (its run says why)."""
    child_config = config.model_copy(
        update={
            "model": config.model.model_copy(update={"kind": kind}),
            "train": config.train.model_copy(update={"seed": seed}),
        }
    )
    name = f"{kind} · seed {seed}"  # what differs between children first
    run_id = open_run(
        child_config, data.series, tracking_uri, name, parent_run_id=parent,
        role="child",
    )  # fmt: skip
    # The same child tried again (its Dask worker died): close the run the
    # dead attempt left RUNNING.
    key = f"{parent}/{kind}/{seed}"
    tracking.set_tags(tracking_uri, run_id, {CHILD_TAG: key})
    tracking.kill_stale_runs(tracking_uri, config.experiment_name, CHILD_TAG, key, run_id)
    try:
        result = train_in_run(child_config, data, tracking_uri, run_id)
    except TrainingError as exc:  # the run is already marked FAILED with the reason
        get_run_logger().warning("%s failed: %s", name, exc)
        return None
    keep = ("run_id", "status", "parameters", "metrics", "evaluation")
    return {**{k: getattr(result, k) for k in keep}, "model": kind, "seed": seed}


SCORED_ON = {"test": "test split", "backtest": "mean over backtest folds"}


@task(cache_policy=NO_CACHE)
def rank(
    children: list[dict],
    data: PreparedData,
    tracking_uri: str,
    parent: str,
    scored_on: str = SCORED_ON["test"],
    sort_by: str = "test_mse",
):
    """Build and log the leaderboard on the parent run, best first by
    `sort_by` (`ExperimentConfig.rank_metric`)."""
    board = leaderboard.build_leaderboard(children, sort_by)
    table = leaderboard.to_markdown(board)  # the terminal shows CompareResult.to_text
    tracking.log_text(tracking_uri, parent, table, "leaderboard.md")
    tracking.set_tags(
        tracking_uri, parent,
        {"mlflow.note.content": f"Leaderboard ({scored_on}, by {sort_by}):\n\n{table}"},
    )  # fmt: skip
    tracking.log_text(
        tracking_uri, parent, board.to_csv(index=False), "leaderboard.csv"
    )
    best = board.iloc[0]
    tracking.log_metrics(
        tracking_uri,
        parent,
        {
            "best_test_mse": float(best["test_mse_mean"]),
            "best_test_mse_raw": float(best["test_mse_raw_mean"]),
            f"best_{sort_by}": float(best[f"{sort_by}_mean"]),
            **leaderboard.per_model_metrics(board),
        },
    )
    tracking.set_tags(tracking_uri, parent, {"winner": leaderboard.winner(board)})
    figure = plots.leaderboard_bars(board, title=f"Leaderboard, {scored_on}")
    tracking.log_figure(tracking_uri, parent, figure, "plots/leaderboard.png")
    plots.close(figure)
    _log_forecasts(children, data, tracking_uri, parent)
    curves = leaderboard.lead_time_errors(children)
    if curves:
        figure = plots.error_by_lead_time(curves)
        tracking.log_figure(
            tracking_uri, parent, figure, "plots/error_by_lead_time.png"
        )
        plots.close(figure)
    return board


def _log_forecasts(
    children, data: PreparedData, tracking_uri: str, parent: str
) -> None:
    """Every model's step-1 forecast (its first seed) against the actual series
    (for a panel: the first model's best, median and worst series)."""
    first = {}
    for child in children:
        first.setdefault(child["model"], child["evaluation"])
    some = next(iter(first.values()))
    forecasts = {model: e.forecasts["model"] for model, e in first.items()}
    forecasts.update(
        {f"{b} (baseline)": some.forecasts[b] for b in leaderboard.BASELINES
         if b in some.forecasts}
    )  # fmt: skip
    for k, target in enumerate(data.series.targets):
        if some.window_series is None:
            step_1 = {name: values[:, 0, k] for name, values in forecasts.items()}
            figure = plots.forecast_vs_actual(
                some.time_index, some.actual[:, 0, k], step_1, target
            )
        else:
            picks = plots.pick_series(some.series_table)
            figure = plots.panel_examples(some, picks, target, k, forecasts)
        name = tracking.safe_name(target)
        tracking.log_figure(tracking_uri, parent, figure, f"plots/forecasts_{name}.png")
        plots.close(figure)


def _as_records(board) -> list[dict]:
    keep = [
        "rank",
        "model",
        "kind",
        "runs",
        "run_ids",
        "skill_vs_persistence",
        "train_seconds_mean",
        "parameters",
    ]
    keep += [
        c for c in board.columns if c.endswith(("_mean", "_std")) and c not in keep
    ]
    records = board[keep].to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in records
    ]
