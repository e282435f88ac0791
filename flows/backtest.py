"""Backtest tasks: one task per fold (prepare, retrain, score), cached by the
fold's rows, the data digest, the config and the code; the summary and a
per-fold table go to the run that asked for them.

Used by `rnnflow train` and `rnnflow compare` when `evaluate.backtest.folds`
is 2 or more. The run's own training on the test split is the last fold of an
expanding backtest, so that fold is not trained twice.
"""

import re
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.logging import get_run_logger

from components import tracking
from components.config.schema import ExperimentConfig
from components.evaluation import backtest, plots
from components.evaluation.backtest import Fold
from components.models.common import target_positions
from components.tracking import provenance
from components.training import fit as training
from flows.cluster import dask_runner
from flows.steps import (
    PreparedData,
    build,
    choose_settings,
    evaluate,
    fit_summary,
    make_datasets,
    normalize,
    split_data,
)

# Per-fold numbers logged with the fold index as the step (one chart per metric).
FOLD_METRICS = ("test_mse", "test_mae", "baseline_persistence_test_mse")
_PER_STEP = re.compile(r"_h\d+$")  # test_mae_h3: per lead time, not in the table


def _fold_cache_key(context, parameters) -> str:
    config: ExperimentConfig = parameters["config"]
    training_fields = {
        **config.training_fields(),
        "evaluate.season": config.evaluate.season,
    }
    return backtest.fold_key(
        parameters["fold"],
        parameters["series"].digest,
        training_fields,
        provenance.code_digest(),
    )


@task(
    cache_key_fn=_fold_cache_key,
    persist_result=True,
    result_serializer="json",
    task_run_name="backtest-fold-{fold.index}",
)
def backtest_fold(config: ExperimentConfig, series, fold: Fold) -> dict:
    """Prepare the fold's rows like the main split (normalizer fitted on the
    fold's training rows only), train from scratch, score its test block."""
    logger = get_run_logger()
    logger.info("backtest fold %d: %s", fold.index, fold.ranges())
    fold_series = backtest.fold_rows(series, fold)
    prepared = split_data(fold_series, config.data, fold.split, config.window)
    normalizer, scaled = normalize(
        prepared, fold_series, config.data.scale, config.model.id_embedding > 0
    )
    datasets = make_datasets(scaled, config.window, config.train)
    positions = target_positions(series.features, series.targets, config.model)
    spec, _ = choose_settings(config.model, config.window, scaled, positions)
    model = build(spec, config.train, config.window, scaled["train"], positions)
    result = training.fit_model(
        model, datasets["train"], datasets.get("val"), config.train
    )
    report = evaluate(
        model, scaled, config, normalizer, series.targets, "test",
        f"test block of backtest fold {fold.index}",
    )  # fmt: skip
    record = fold_record(fold, normalizer, {**report.metrics, **fit_summary(result)})
    logger.info(
        "backtest fold %d: test_mse %.4f (persistence %.4f)",
        fold.index,
        report.metrics["test_mse"],
        report.metrics["baseline_persistence_test_mse"],
    )
    return record


def folds_on_dask(config: ExperimentConfig, series, folds: list[Fold], cache: Path):
    """The folds' records, each fold a task trained in a Dask worker process,
    all submitted at once: on the cluster at `cluster.address`, else a local
    one of `cluster.workers` processes. A fold whose worker dies is run again
    on another (Dask reschedules it); finished folds are cached in `cache`."""
    spec = config.cluster
    where = spec.address or f"a local cluster of {spec.workers} processes"
    get_run_logger().info("backtest: %d folds on Dask (%s)", len(folds), where)

    @flow(name="rnnflow-backtest-folds", flow_run_name="backtest-folds")
    def on_dask():  # the data stays out of the flow's (API) parameters
        fold_task = backtest_fold.with_options(result_storage=cache)
        futures = [fold_task.submit(config, series, fold) for fold in folds]
        return [future.result() for future in futures]

    return on_dask.with_options(task_runner=dask_runner(spec.address, spec.workers))()


def fold_record(fold: Fold, normalizer, metrics: dict) -> dict:
    """What a fold leaves behind, JSON-ready (it is also the cached result);
    a panel's per-series statistics stay out (one row per fold)."""
    return {
        **fold.ranges(),
        "normalizer": {} if hasattr(normalizer, "series") else normalizer.to_dict(),
        "metrics": {k: float(v) for k, v in metrics.items()},
    }


def run_backtest(
    config: ExperimentConfig,
    data: PreparedData,
    tracking_uri: str,
    run_id: str,
    main_metrics: dict[str, float],
) -> dict[str, float]:
    """Every fold of `data.folds` (the main training's metrics stand in for
    the fold that equals the test split); log the summary, per-fold metrics,
    the fold table and chart on `run_id`. Returns the summary metrics."""
    n_rows = backtest.axis_length(data.series)
    cache = Path(tracking.local_state_dir(tracking_uri, "backtest-cache"))
    fold_task = backtest_fold.with_options(result_storage=cache)
    own = [f for f in data.folds if f.start == 0 and f.stop == n_rows]  # the run's split
    others = [f for f in data.folds if f not in own]
    if config.cluster.on_dask and len(others) > 1:
        trained = folds_on_dask(config, data.series, others, cache)
    else:
        trained = [fold_task(config, data.series, fold) for fold in others]
    found = dict(zip([f.index for f in others], trained))
    found |= {f.index: fold_record(f, data.normalizer, main_metrics) for f in own}
    records = [found[f.index] for f in data.folds]
    summary = backtest.summarize([r["metrics"] for r in records])
    summary["backtest_folds"] = len(records)
    for record in records:
        tracking.log_metrics(
            tracking_uri,
            run_id,
            {f"backtest_fold_{m}": record["metrics"][m] for m in FOLD_METRICS},
            step=record["fold"],
        )
    tracking.log_metrics(tracking_uri, run_id, summary)
    table = fold_table(records)
    tracking.log_text(tracking_uri, run_id, table.to_csv(index=False), "backtest.csv")
    figure = plots.backtest_folds(table)
    tracking.log_figure(tracking_uri, run_id, figure, "plots/backtest.png")
    plots.close(figure)
    get_run_logger().info(
        "backtest over %d folds: test_mse %.4f ± %.4f (persistence %.4f)",
        len(records),
        summary["backtest_test_mse_mean"],
        summary["backtest_test_mse_std"],
        summary["backtest_baseline_persistence_test_mse_mean"],
    )
    return summary


def fold_table(records: list[dict]) -> pd.DataFrame:
    """One row per fold: row ranges, the fold's normalizer statistics
    (`mean.<column>`, `std.<column>`) and its test metrics."""
    rows = []
    for record in records:
        row = {k: record[k] for k in backtest.RANGE_COLUMNS}
        for column, stats in record["normalizer"].items():
            row[f"mean.{column}"] = stats["mean"]
            row[f"std.{column}"] = stats["std"]
        row.update(
            {k: v for k, v in record["metrics"].items() if not _PER_STEP.search(k)}
        )
        rows.append(row)
    return pd.DataFrame(rows)
