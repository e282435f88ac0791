"""Training on a panel larger than memory (`data.stream: true`): scan ->
open the run -> build -> fit on streamed windows -> score the test split
shard by shard -> log. The math is `components.data.stream`; this module
orders it and logs it.

The scan (every file read once, statistics fitted on the training rows)
runs before the MLflow run opens, so a bad file leaves nothing behind.
"""

from prefect.logging import get_run_logger

from components import tracking
from components.config.loading import to_yaml
from components.config.schema import ExperimentConfig
from components.data import stream
from components.evaluation import plots
from components.evaluation import streamed as streamed_scores
from components.serving import streamed as streamed_forecast
from components.tracking.params import flatten
from components.tracking.provenance import package_versions
from components.tracking.streamed import MODEL_TAG, STREAM_TAG
from flows.results import TrainResult
from flows.runs import fit, open_run
from flows.steps import build, choose_settings, fit_summary


def train_streamed(config: ExperimentConfig, tracking_uri: str) -> TrainResult:
    """Train and score one network on a streamed panel, logged as one run."""
    logger = get_run_logger()
    panel = stream.scan_panel(
        config.data, config.split, config.window, logger.info,
        scale_of=streamed_scores.mase_scale_of(config.evaluate.season),
    )  # fmt: skip
    logger.info("streamed panel: %s", panel.summary())
    sample = stream.sample_splits(panel)
    run_id = open_run(config, panel, tracking_uri)
    with tracking.failing_marks_run(tracking_uri, run_id):
        tracking.set_tags(tracking_uri, run_id, {STREAM_TAG: "true"})
        spec, chosen = choose_settings(
            config.model, config.window, sample, _positions(panel)
        )
        if chosen:
            tracking.set_tags(tracking_uri, run_id, chosen)
        model = build(spec, config.train, config.window, sample["train"], _positions(panel))
        cap, batch = config.train.windows_per_series, config.train.batch_size
        datasets = {
            "train": stream.dataset(panel, "train", batch, cap, config.train.seed),
        }
        if panel.windows["val"].sum():
            datasets["val"] = stream.dataset(panel, "val", batch)
        logger.info(
            "training on %d windows an epoch (%s), validating on %d",
            stream.epoch_windows(panel, "train", cap),
            f"at most {cap} of each series" if cap else "every window",
            stream.epoch_windows(panel, "val", None),
        )
        fit_result = fit(model, datasets, config.train, tracking_uri, run_id)
        metrics, table = streamed_scores.score(
            model, panel, "test", config.train.batch_size, config.evaluate.season
        )
        metrics.update(fit_summary(fit_result))
        model_uri = _log(config, tracking_uri, run_id, panel, model, fit_result, metrics, table)
        tracking.finish_run(tracking_uri, run_id)
    return TrainResult(
        run_id=run_id,
        experiment=config.experiment_name,
        experiment_id=tracking.ensure_experiment(tracking_uri, config.experiment_name),
        status="FINISHED",
        tracking_uri=tracking_uri,
        model_uri=model_uri,
        forecaster_uri=None,
        parameters=model.count_params(),
        metrics=metrics,
        warnings=[],
    )


def _positions(panel) -> tuple[int, ...]:
    """Where each target sits among the inputs: the inputs are the targets."""
    return tuple(range(len(panel.targets)))


def _log(config, tracking_uri, run_id, panel, model, fit_result, metrics, table) -> str:
    params = flatten(config)
    params.update({f"windows.{s}": int(panel.windows[s].sum()) for s in stream.SPLITS})
    params.update({
        "series.total": len(panel.series) + len(panel.skipped),
        "series.skipped": len(panel.skipped), "rows.total": panel.rows,
        "data.files": sum(map(len, panel.shards)), "data.shards": len(panel.shards),
        "split.val_from": panel.cut_text[0], "split.test_from": panel.cut_text[1],
        "targets": panel.targets, "model.parameters": model.count_params(),
        "precision_policy": model.dtype_policy.name, "training_loop": "fit (streamed)",
    })  # fmt: skip
    params.update(package_versions())
    tracking.log_params(tracking_uri, run_id, params)
    tracking.log_text(tracking_uri, run_id, to_yaml(config), "config.yaml")
    tracking.log_metrics(tracking_uri, run_id, metrics)
    figure = plots.loss_curve(fit_result.history, fit_result.best_epoch)
    tracking.log_figure(tracking_uri, run_id, figure, "plots/loss.png", image_key=True)
    plots.close(figure)
    tracking.log_table(
        tracking_uri, run_id, panel.normalizer.table(), "series_scaling.parquet"
    )
    tracking.log_table(tracking_uri, run_id, table, "series_metrics.parquet")
    if panel.skipped:
        tracking.log_text(
            tracking_uri, run_id, "\n".join(panel.skipped) + "\n", "skipped_series.txt"
        )
    model_uri = tracking.log_keras_model(tracking_uri, run_id, model)
    note = (
        f"**{config.model.kind}** streamed from `{config.data.path}`, "
        f"{len(panel.series)} series → {', '.join(panel.targets)} "
        f"({config.window.input_width} steps in, {config.window.horizon} out). "
        f"Test MASE {metrics['test_mase']:.3f} (persistence "
        f"{metrics['baseline_persistence_test_mase']:.3f})."
    )
    tracking.set_tags(
        tracking_uri, run_id, {MODEL_TAG: model_uri, "mlflow.note.content": note}
    )
    return model_uri


def predict_streamed(config: ExperimentConfig, tracking_uri: str, model_uri: str | None,
                     output: str, say=print) -> dict:
    """Forecast every series of the streamed panel at `config.data.path`
    with a streamed run's network (`runs:/RUN`, else the experiment's newest
    streamed run) into the Parquet file `output`; what `rnnflow predict`
    does for `data.stream: true`."""
    from components.tracking import registry, streamed

    run_id = (registry.run_behind(tracking_uri, model_uri, None) if model_uri else None) or (
        streamed.newest_streamed_run(tracking_uri, config.experiment_name)
    )
    served = streamed.load_streamed(tracking_uri, run_id)
    made = streamed_forecast.forecast_panel(
        served.model, served.normalizer, config.data, served.window, output, say
    )
    return {"run_id": run_id, "model_uri": served.model_uri, "output": output,
            "series": made.counts, "origin": made.origin}  # fmt: skip
