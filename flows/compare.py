"""The compare flow: several architectures (and seeds) on exactly the same data,
one parent MLflow run with a child run per training, and a leaderboard.

Data is ingested, split and normalized once; every child reuses it, so windows,
statistics and test rows are identical across models. A child whose training
fails (a non-finite loss, say) ends FAILED and drops out of the leaderboard;
the others go on.

Example:
    >>> from components.config import load_experiment
    >>> result = compare_flow(load_experiment("gas_furnace"), ["mlp", "gru"], seeds=3)
    >>> result["leaderboard"][0]["model"]
    'gru'
"""

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from components import leaderboard, plots, tracking
from components.config import ExperimentConfig, flatten, to_yaml
from components.errors import TrainingError
from flows.train import PreparedData, open_run, prepare_data, train_in_run


@flow(name="rnnflow-compare", flow_run_name="{config.name}-compare")
def compare_flow(config: ExperimentConfig, models: list[str], seeds: int = 1) -> dict:
    """Train every model in `models` with `seeds` seeds; rank them with baselines."""
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(tracking_uri)
    data = prepare_data(config)
    parent = open_run(
        config, data.series, tracking_uri, run_name=f"{config.name}-compare"
    )
    with tracking.failing_marks_run(tracking_uri, parent):
        tracking.log_params(
            tracking_uri,
            parent,
            {
                **flatten(config),
                "compare.models": models,
                "compare.seeds": seeds,
            },
        )
        tracking.log_text(tracking_uri, parent, to_yaml(config), "config.yaml")
        children = [
            child
            for kind in models
            for seed in range(config.train.seed, config.train.seed + seeds)
            if (child := _train_child(config, kind, seed, data, tracking_uri, parent))
        ]
        if not children:
            raise TrainingError("every child training failed; see the child runs")
        board = rank(children, data, tracking_uri, parent)
        tracking.finish_run(tracking_uri, parent)
    return {
        "parent_run_id": parent,
        "experiment": config.experiment_name,
        "tracking_uri": tracking_uri,
        "leaderboard": _as_records(board),
    }


def _train_child(config, kind, seed, data: PreparedData, tracking_uri, parent):
    child_config = config.model_copy(
        update={
            "model": config.model.model_copy(update={"kind": kind}),
            "train": config.train.model_copy(update={"seed": seed}),
        }
    )
    name = f"{config.name}-{kind}-seed{seed}"
    run_id = open_run(
        child_config, data.series, tracking_uri, name, parent_run_id=parent
    )
    try:
        result = train_in_run(child_config, data, tracking_uri, run_id)
    except TrainingError as exc:  # the run is already marked FAILED with the reason
        get_run_logger().warning("%s failed: %s", name, exc)
        return None
    return {**result, "model": kind, "seed": seed}


@task(cache_policy=NO_CACHE)
def rank(children: list[dict], data: PreparedData, tracking_uri: str, parent: str):
    """Build, print and log the leaderboard on the parent run."""
    board = leaderboard.build_leaderboard(children)
    table = leaderboard.to_markdown(board)
    get_run_logger().info("leaderboard (test split)\n%s", table)
    tracking.log_text(tracking_uri, parent, table, "leaderboard.md")
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
        },
    )
    tracking.set_tags(tracking_uri, parent, {"winner": leaderboard.winner(board)})
    figure = plots.leaderboard_bars(board)
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
    """Every model's step-1 forecast (its first seed) against the actual series."""
    first = {}
    for child in children:
        first.setdefault(child["model"], child["evaluation"])
    some = next(iter(first.values()))
    for k, target in enumerate(data.series.targets):
        forecasts = {model: e.forecasts["model"][:, 0, k] for model, e in first.items()}
        forecasts.update(
            {
                f"{b} (baseline)": some.forecasts[b][:, 0, k]
                for b in leaderboard.BASELINES
                if b in some.forecasts
            }
        )
        figure = plots.forecast_vs_actual(
            some.time_index, some.actual[:, 0, k], forecasts, target
        )
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
