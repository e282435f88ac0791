"""`rnnflow monitor`: the forecasts kept in the forecast store, scored against
the actuals that have arrived since, beside seasonal naive on the same rows
and the champion's own holdout level; a retrain started when accuracy or
interval coverage drifts past the `monitor` bounds.

The retrain goes through the `retrain-NAME` Prefect deployment when one is
registered (`rnnflow deploy`: the deployment's worker runs it, one at a
time), else it runs here; either way the retrain's champion/challenger gate
decides whether the champion moves, as on a calendar retrain.
"""

from prefect import flow

from components import tracking
from components.common.errors import DataError
from components.config.schema import ExperimentConfig
from components.data import ingest
from components.evaluation import live_plots, monitoring
from components.evaluation import plots as plots_module
from components.serving.forecast_store import ForecastStore
from components.tracking import registry
from flows.forecast import store_root
from flows.results import MonitorResult

RETRAIN_DEPLOYMENT = "rnnflow-retrain-experiment/retrain-{name}"


@flow(name="rnnflow-monitor", flow_run_name="{config.name}-monitor")
def monitor_flow(config: ExperimentConfig, retrain: bool | None = None) -> MonitorResult:
    """Score the last `monitor.window` origins of kept forecasts, log a
    `monitor` run, and start a retrain when a bound is crossed (`retrain`
    overrides `monitor.retrain`)."""
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(tracking_uri)
    root = store_root(config, tracking_uri)
    kept = ForecastStore(root).read()
    if kept.empty:
        raise DataError(
            f"forecast store {root} holds no forecasts: run `rnnflow forecast "
            f"{config.name}` first (`--as-of T` backfills past origins)."
        )
    loaded = ingest.load_series(config.data)
    targets = [t for t in loaded.targets if t in kept.columns]
    if not targets:
        raise DataError(
            f"forecast store {root}: none of the targets {loaded.targets} was "
            "forecast there (a store of another experiment? set `forecast.store`)."
        )
    actuals = monitoring.actual_rows(loaded.frame, loaded.layout, config.name, targets)
    kept, model, others = monitoring.by_serving_model(kept)
    spec = config.monitor
    rows = monitoring.scored_rows(kept, actuals, targets, config.evaluate.season, spec.window)
    figures = monitoring.summarize(rows)
    reference = _reference_mase(tracking_uri, kept, rows)
    decision = monitoring.decide(
        figures, reference, spec.max_degradation, spec.max_coverage_error, spec.min_rows
    )
    origins = list(figures.by_origin["origin"]) if len(rows) else []
    last = origins[-1] if origins else "none"
    run_id = tracking.start_run(
        tracking_uri, config.experiment_name, f"monitor · {config.name} · {last}",
        {"rnnflow.role": "monitor", "window": f"{len(origins)} origins",
         "model": model, "rows_of_other_models": str(others),
         "decision": "retrain" if decision.retrain else "keep",
         "reasons": "; ".join(decision.reasons)[:4900]},
    )  # fmt: skip
    with tracking.failing_marks_run(tracking_uri, run_id):
        metrics = dict(figures.metrics) | {"retrain_needed": float(decision.retrain)}
        if reference is not None:
            metrics["reference_mase"] = reference
        if decision.degradation is not None:
            metrics["degradation"] = decision.degradation
        if decision.coverage_error is not None:
            metrics["coverage_error"] = decision.coverage_error
        tracking.log_metrics(tracking_uri, run_id, metrics)
        _log_figures(tracking_uri, run_id, figures, reference, config)
        tracking.finish_run(tracking_uri, run_id)
    started = None
    if decision.retrain and (spec.retrain if retrain is None else retrain):
        started = start_retrain(config)
        tracking.set_tags(tracking_uri, run_id, {"started": started[:4900]})
    result = MonitorResult(
        run_id=run_id,
        experiment=config.experiment_name,
        origins=origins,
        reference_mase=reference,
        metrics=metrics,
        retrain=decision.retrain,
        reasons=decision.reasons,
        started=started,
        worst=figures.by_series,
        model=model,
        other_rows=others,
    )
    return result


def _reference_mase(tracking_uri: str, kept, rows) -> float | None:
    """The holdout `test_mase` of the model behind the window's newest
    forecasts (its training run's), or None."""
    if rows.empty:
        return None
    newest = kept[kept["origin"] == rows["origin"].iloc[-1]]
    if "model_uri" not in newest or newest.empty:
        return None
    model_uri = str(newest["model_uri"].iloc[0])
    version = str(newest["model_version"].iloc[0]) if "model_version" in newest else ""
    run_id = registry.run_behind(tracking_uri, model_uri, version or None)
    value = registry.run_metrics(tracking_uri, run_id).get("test_mase") if run_id else None
    return float(value) if value is not None else None


def _log_figures(tracking_uri, run_id, figures, reference, config) -> None:
    """Tables (every scored row, per series and step, per origin) and plots
    (error and coverage over time, the worst series)."""
    tracking.log_table(tracking_uri, run_id, figures.rows, "monitor_rows.parquet")
    tracking.log_table(
        tracking_uri, run_id, figures.by_series_step, "by_series_step.parquet"
    )
    tracking.log_table(tracking_uri, run_id, figures.by_origin, "by_origin.parquet")
    if figures.rows.empty:
        return
    spec = config.monitor
    bound = None
    if spec.max_degradation is not None:
        level = reference or figures.metrics.get("monitor_seasonal_naive_mase")
        bound = level * (1 + spec.max_degradation) if level else None
    plots = {"error_over_time.png": live_plots.error_over_time(
        figures.by_origin, reference, bound
    )}  # fmt: skip
    if figures.levels:
        plots["coverage_over_time.png"] = live_plots.coverage_over_time(
            figures.by_origin, figures.levels, spec.max_coverage_error
        )
    if len(figures.by_series) > 1:
        plots["worst_series.png"] = live_plots.worst_series(figures.by_series)
    for name, fig in plots.items():
        tracking.log_figure(tracking_uri, run_id, fig, name)
        plots_module.close(fig)


def start_retrain(config: ExperimentConfig) -> str:
    """Start the retrain: a flow run of the `retrain-NAME` deployment when
    one is registered on the Prefect API (its worker runs it), else the
    retrain flow here. Returns what was started, in words."""
    from prefect.deployments import run_deployment

    from flows.retrain import retrain_flow

    name = RETRAIN_DEPLOYMENT.format(name=config.name)
    if _deployment_exists(name):
        run = run_deployment(name, timeout=0)
        return f"started flow run {run.name} of deployment {name}"
    result = retrain_flow(config)
    return f"retrained here: {result.decision}: {result.reason}; {result.to_text()}"


def _deployment_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True
