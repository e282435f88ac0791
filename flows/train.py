"""The training flow: ingest -> split -> normalize -> window -> build -> train ->
evaluate -> track -> package. The data and model steps are `flows.steps`;
this module opens the MLflow run around them, trains, calibrates, logs and
packages. Each task is a thin wrapper over component functions.

Data is validated (ingest, split, normalize) before the MLflow run is opened, so
bad input leaves nothing behind. Once the run is open, any failure ends it
FAILED with the reason; it is never left RUNNING.

Example:
    >>> from components.config import load_experiment
    >>> result = train_flow(load_experiment("gas_furnace", ["train.epochs=5"]))
    >>> result.status, sorted(result.metrics)[:2]
    ('FINISHED', ['baseline_linear_test_mae', 'baseline_linear_test_mae_raw'])
"""

import contextlib

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from components import tracking
from components.config.loading import to_yaml, with_settings
from components.config.schema import DataSpec, ExperimentConfig
from components.data import ingest, preprocess
from components.data.windowing import window_starts
from components.evaluation import calibrate, intervals, panel_metrics, plots, quality
from components.evaluation import evaluate as evaluation
from components.models.ensemble import median_ensemble
from components.serving.forecaster import Forecaster
from components.serving.panel import made_by
from components.serving.kinds import forecaster_for
from components.tracking import packaging
from components.tracking.describe import run_description
from components.tracking.params import run_params
from components.training import builder, checkpoint
from components.training import fit as training
from flows.backtest import run_backtest
from flows.results import TrainResult
from flows.runs import deciding_columns, fit, open_run  # noqa: F401  (re-exported)
from flows.steps import (
    PreparedData,
    build,
    choose_settings,
    evaluate,
    fit_summary,
    make_datasets,
    prepare_all_rows,
    prepare_data,
)

# Tasks pass arrays, datasets and models in memory; nothing here is worth caching.
_task = task(cache_policy=NO_CACHE)


@_task
def take_over(
    folder: checkpoint.CheckpointFolder,
    config: ExperimentConfig,
    tracking_uri: str,
    run_id: str,
) -> checkpoint.TrainingState | None:
    """Close the runs a killed process left RUNNING for this training; return
    the state to resume from, if it left one."""
    logger = get_run_logger()
    tracking.set_tags(tracking_uri, run_id, {"rnnflow_checkpoint": folder.key})
    stale = tracking.kill_stale_runs(
        tracking_uri, config.experiment_name, "rnnflow_checkpoint", folder.key, run_id
    )
    if stale:
        logger.warning("marked stale RUNNING runs KILLED: %s", ", ".join(stale))
    if not folder.shared:
        logger.warning(
            "the same training is running in another process: training from "
            "scratch in a private checkpoint folder %s",
            folder.path,
        )
    state = folder.load()
    if state is None:
        folder.clear()  # whatever is there belongs to no resumable training
        return None
    tracking.set_tags(tracking_uri, run_id, {"resumed_from_run": state.run_id})
    logger.info(
        "resuming from epoch %d of run %s (checkpoint %s)",
        state.epoch + 1,
        state.run_id,
        folder.path,
    )
    return state


@_task
def check_quality(
    val_report: evaluation.Evaluation, kind: str, panel: bool = False
) -> quality.QualityCheck:
    """The guard rail: does the network beat persistence and the linear
    baseline on the validation split?"""
    found = quality.check_validation(
        val_report.metrics, kind, len(val_report.actual), quality.unit_for(panel)
    )
    if found.message:
        get_run_logger().warning("%s", found.message)
    return found


@_task
def calibrate_intervals(
    val_report: evaluation.Evaluation | None,
    report: evaluation.Evaluation,
    config: ExperimentConfig,
    targets: list[str],
    tracking_uri: str,
    run_id: str,
) -> tuple[dict[str, float], intervals.Calibration]:
    """The served intervals, calibrated on the validation windows
    (`evaluate.calibration`) and scored on the test split: a point model's
    conformal radii, or a quantile model's pairs moved to cover their level.
    Logs the metrics, the forecast bands and the calibration plot; returns
    the metrics and the `Calibration` for serving. A panel calibrates in
    units of each series' scale (`window_scale`)."""
    conformal = config.evaluate.calibration == "conformal" and val_report is not None
    metrics, calibration, central = calibrate.calibrate_intervals(
        val_report, report, conformal, config.evaluate.intervals,
        config.model.quantiles,
    )  # fmt: skip
    if conformal:
        _warn_short_calibration(len(val_report.actual), central)
    tracking.log_metrics(tracking_uri, run_id, metrics)
    if report.window_series is None:
        quantiles = calibration.quantiles(report.forecasts["model"], report.quantiles)
        _log_interval_figures(tracking_uri, run_id, report, targets, quantiles)
    coverage = [metrics[f"test_coverage_{intervals.level_name(v)}"] for v in central]
    if central:
        figure = plots.calibration(central, coverage)
        tracking.log_figure(tracking_uri, run_id, figure, "plots/calibration.png")
        plots.close(figure)
    return metrics, calibration


def _warn_short_calibration(windows: int, levels: list[float]) -> None:
    short = [v for v in levels if windows < intervals.windows_needed(v)]
    if short:
        get_run_logger().warning(
            "the validation split has %d windows: too few to calibrate the %s "
            "interval(s), which are the largest validation error (a longer "
            "`split.val` gives them their coverage)",
            windows,
            ", ".join(f"{intervals.level_name(v)} %" for v in short),
        )


def _log_interval_figures(tracking_uri, run_id, report, targets, quantiles) -> None:
    """Each target's first-step forecast with its interval bands, widest
    drawn first."""
    forecast = report.forecasts["model"]
    pairs = intervals.bands(quantiles)
    for k, target in enumerate(targets):
        bands = {
            f"{intervals.level_name(level)} % interval": (low[:, 0, k], high[:, 0, k])
            for level, (low, high) in sorted(pairs.items(), reverse=True)
        }
        figure = plots.forecast_vs_actual(
            report.time_index, report.actual[:, 0, k], {"model": forecast[:, 0, k]},
            target, bands,
        )  # fmt: skip
        name = tracking.safe_name(target)
        tracking.log_figure(tracking_uri, run_id, figure, f"plots/intervals_{name}.png")
        plots.close(figure)


@_task
def track(
    config: ExperimentConfig,
    tracking_uri: str,
    run_id: str,
    model,
    fit_result: training.FitResult,
    report: evaluation.Evaluation,
    normalizer: preprocess.Normalizer,
    scaled: dict[str, preprocess.ScaledSplit],
    series: ingest.LoadedSeries,
) -> str:
    """Log config, params, data, metrics, plots, statistics and the model."""
    params = run_params(config, series, scaled, model, fit_result.loop, fit_result.xla)
    tracking.log_params(tracking_uri, run_id, params)
    tracking.log_text(tracking_uri, run_id, to_yaml(config), "config.yaml")
    tracking.log_dataset(
        tracking_uri, run_id, series.frame, config.name, series.source, series.digest
    )
    summary = fit_summary(fit_result)
    tracking.log_metrics(tracking_uri, run_id, {**report.metrics, **summary})
    figure = plots.loss_curve(fit_result.history, fit_result.best_epoch)
    tracking.log_figure(
        tracking_uri, run_id, figure, "plots/loss.png", image_key=True
    )
    plots.close(figure)
    if series.layout is None:
        tracking.log_dict(tracking_uri, run_id, normalizer.to_dict(), "normalizer.json")
        _log_forecast_figures(tracking_uri, run_id, report, series.targets)
    else:
        tracking.log_table(
            tracking_uri, run_id, normalizer.table(), "series_scaling.parquet"
        )
        _log_panel_results(tracking_uri, run_id, report, series.targets)
    return tracking.log_keras_model(tracking_uri, run_id, model)


@_task
def package(
    forecaster: Forecaster, data: DataSpec, tracking_uri: str, run_id: str
) -> str:
    """Log the servable pyfunc model (network + normalizer + window + columns);
    its input example is the source's own rows (long or wide), read again
    from `data`, as a forecast request reads them."""
    example, _ = forecaster.request_frame(ingest.read_raw(data))
    return packaging.log_forecaster(tracking_uri, run_id, forecaster, example)


@flow(name="rnnflow-train", flow_run_name="{config.name}-{config.model.kind}")
def train_flow(config: ExperimentConfig) -> TrainResult:
    """Train and evaluate one experiment; return its run id, status and metrics."""
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(tracking_uri)
    if config.data.stream:  # a panel larger than memory: flows/train_stream.py
        from flows.train_stream import train_streamed

        return train_streamed(config, tracking_uri)
    data = prepare_data(config)
    run_id = open_run(config, data.series, tracking_uri)
    return train_in_run(config, data, tracking_uri, run_id)


def train_in_run(
    config: ExperimentConfig,
    data: PreparedData,
    tracking_uri: str,
    run_id: str,
    finish: bool = True,
    start_from: tuple[str, list] | None = None,
) -> TrainResult:
    """window -> build -> train -> evaluate -> track -> package, in an open run.

    The run ends FINISHED (unless `finish` is False: the caller goes on logging
    to it), or FAILED with the reason if anything raises. `start_from`: (what
    it is, a Keras model) whose weights training starts from instead of the
    built ones (a warm start), used when their shapes match.
    """
    series, normalizer, scaled = data.series, data.normalizer, data.scaled
    with (
        tracking.failing_marks_run(tracking_uri, run_id),
        _checkpoint_folder(config, series, tracking_uri, run_id) as folder,
    ):
        resume = take_over(folder, config, tracking_uri, run_id) if folder else None
        start_epoch = resume.epoch if resume else 0
        datasets = make_datasets(scaled, config.window, config.train, start_epoch)
        spec, chosen = choose_settings(
            config.model, config.window, scaled, data.target_positions
        )
        if chosen:
            tracking.set_tags(tracking_uri, run_id, chosen)
        model = build(
            spec, config.train, config.window, scaled["train"], data.target_positions
        )
        if start_from and not resume:
            warm_start(model, *start_from, tracking_uri, run_id)
        fit_result = fit(
            model, datasets, config.train, tracking_uri, run_id, folder, resume
        )
        members = {}
        if spec.ensemble > 1:
            model, members = train_members(
                model, spec, config, data, tracking_uri, run_id
            )
        if config.model.combine == "auto":
            config = choose_combination(model, data, config, tracking_uri, run_id)
        report = evaluate(model, scaled, config, normalizer, series.targets)
        report.metrics.update(members)
        checked, calibration, warnings = _validation_checks(
            model, data, config, report, tracking_uri, run_id
        )
        served_normalizer, served_report = normalizer, report
        if config.train.refit:
            model, served_normalizer, served_report, refit_metrics = refit(
                spec, config, data, fit_result, report, tracking_uri, run_id
            )
            checked.update(refit_metrics)
        model_uri = track(
            config,
            tracking_uri,
            run_id,
            model,
            fit_result,
            report,
            normalizer,
            scaled,
            series,
        )
        forecaster = forecaster_for(
            model, served_normalizer, config, series, served_report, calibration
        )
        forecaster_uri = package(forecaster, config.data, tracking_uri, run_id)
        metrics = {**report.metrics, **fit_summary(fit_result), **checked}
        tracking.set_tags(
            tracking_uri, run_id,
            {"mlflow.note.content": run_description(config, series, metrics)},
        )  # fmt: skip
        if data.folds:
            metrics.update(run_backtest(config, data, tracking_uri, run_id, metrics))
        if folder:
            folder.clear()  # complete: a rerun trains anew
        if finish:
            tracking.finish_run(tracking_uri, run_id)
    return TrainResult(
        run_id=run_id,
        experiment=config.experiment_name,
        experiment_id=tracking.ensure_experiment(tracking_uri, config.experiment_name),
        status="FINISHED",
        tracking_uri=tracking_uri,
        model_uri=model_uri,
        forecaster_uri=forecaster_uri,
        parameters=model.count_params(),
        metrics=metrics,
        warnings=warnings,
        forecaster=forecaster,
        evaluation=report,
    )


AUTO_COMBINATION = ("theta",)  # what `model.combine: auto` weighs against none
NETWORK_ALONE_Z = -2.0  # how clearly the network alone must win on validation


def choose_combination(model, data: PreparedData, config, tracking_uri, run_id):
    """`model.combine: auto`: the network's mean with per-series Theta, unless
    the network alone scores a lower validation MASE clearly (its per-series
    difference below `NETWORK_ALONE_Z` standard errors): early stopping picked
    the network's epoch on that same split, which flatters it there, and a
    mean of two forecasts is the safer bet when they score alike (it won on
    every M1 subset). Never the test split; no validation: the network.
    Returns the config with the choice."""
    val = data.scaled.get("val")
    chosen, why = [], "no validation windows"
    if val is not None and len(window_starts(len(val.inputs), config.window, val.bounds)):
        trial = with_settings(config, {"model.combine": list(AUTO_COMBINATION)})
        found = evaluate(
            model, data.scaled, trial, data.normalizer, data.series.targets, "val"
        )
        compared = panel_metrics.paired(found.series_table, "network", "model")
        if compared.z >= NETWORK_ALONE_Z:
            chosen = list(AUTO_COMBINATION)
        why = (
            f"validation MASE: network {_fmt(found.metrics.get('network_val_mase'))}, "
            f"mean with {'+'.join(AUTO_COMBINATION)} "
            f"{_fmt(found.metrics.get('val_mase'))}; network minus mean "
            f"{compared.z:+.1f} standard errors over {compared.series} series"
        )
    tracking.set_tags(tracking_uri, run_id, {
        "auto_combine": made_by(chosen), "auto_combine_choice": why,
    })  # fmt: skip
    get_run_logger().info("auto combine: %s (%s)", made_by(chosen), why)
    return with_settings(config, {"model.combine": chosen})


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def warm_start(model, source: str, champion, tracking_uri: str, run_id: str):
    """Start `model` from the weights of `champion` (a Keras model; `source`
    names it, e.g. `champion v3`) when their layers match
    (`builder.load_matching_weights`), else keep the built ones and say why.
    Tagged `warm_start` on the run either way."""
    if not builder.load_matching_weights(model, champion):
        get_run_logger().warning(
            "warm start skipped: %s's layers have other shapes than this network's "
            "(another kind, width, window or inputs); training from scratch", source
        )
        tracking.set_tags(tracking_uri, run_id, {"warm_start": f"no: {source} differs"})
        return
    get_run_logger().info("warm start from %s's weights", source)
    tracking.set_tags(tracking_uri, run_id, {"warm_start": source})


@_task
def refit(spec, config, data: PreparedData, fit_result, report, tracking_uri, run_id):
    """`train.refit`: the same network trained again from its first weights
    (same seed) on every row, for the best epoch's count, its curve logged
    as `refit/loss`. Returns (the refit model, its normalizer, `report` with
    a panel's series scales from every row, `refit_*` metrics)."""
    import dataclasses

    from components.evaluation import panel_metrics

    epochs = max(int(fit_result.best_epoch), 1)
    normalizer, scaled = prepare_all_rows(config, data)
    get_run_logger().info(
        "refit on every row (%d, training had %d) for %d epochs",
        len(scaled["train"].inputs), len(data.scaled["train"].inputs), epochs,
    )  # fmt: skip
    again = config.train.model_copy(update={"epochs": epochs, "patience": 0})
    model = build(spec, again, config.window, scaled["train"], data.target_positions)
    found = fit(model, make_datasets(scaled, config.window, again), again,
                tracking_uri, run_id, prefix="refit/")  # fmt: skip
    if scaled["train"].bounds is not None:  # the served series' scales
        scales = panel_metrics.series_scale(
            *scaled["train"].unpadded_levels(), config.evaluate.season
        )
        report = dataclasses.replace(report, series_scale=panel_metrics.filled(scales))
    tracking.set_tags(tracking_uri, run_id, {"refit": f"every row, {epochs} epochs"})
    metrics = {"refit_epochs": float(epochs), "refit_seconds": found.seconds}
    tracking.log_metrics(tracking_uri, run_id, metrics)
    return model, normalizer, report, metrics


def train_members(first, spec, config, data: PreparedData, tracking_uri, run_id):
    """The rest of a `model.ensemble`: member i is built and shuffled with
    seed `train.seed + i` (its curves logged as `member_<i>/loss`), then all
    are joined into one median model. Returns (the ensemble, each member's
    test scores and the members' total training seconds)."""
    members, scores, seconds = [first], {}, 0.0
    logger = get_run_logger()
    for i in range(1, spec.ensemble):
        member_train = config.train.model_copy(update={"seed": config.train.seed + i})
        logger.info("ensemble member %d of %d (seed %d)", i + 1, spec.ensemble,
                    member_train.seed)  # fmt: skip
        datasets = make_datasets(data.scaled, config.window, member_train)
        member = build(
            spec, member_train, config.window, data.scaled["train"],
            data.target_positions,
        )  # fmt: skip
        found = fit(member, datasets, member_train, tracking_uri, run_id,
                    prefix=f"member_{i}/")  # fmt: skip
        seconds += found.seconds
        members.append(member)
    rank = config.rank_metric.removeprefix("test_")
    for i, member in enumerate(members):
        alone = evaluation.evaluate_on_test(
            member, data.scaled["train"], data.scaled["test"], config.window,
            data.normalizer, data.series.targets, config.data.transform,
            config.evaluate.season,
        )  # fmt: skip
        for name in {rank, "mse", "mase", "smape"}:
            if f"test_{name}" in alone.metrics:
                scores[f"member_{i}_test_{name}"] = alone.metrics[f"test_{name}"]
    scores["ensemble_members_train_seconds"] = seconds
    return median_ensemble(members), scores


def _validation_checks(model, data, config, report, tracking_uri, run_id):
    """The guard rail and the intervals, which both read the validation
    split: (their metrics, the intervals' `Calibration`, warnings), logged
    and tagged on the run. Without validation windows: no guard rail, no
    point-model intervals, and a quantile model's quantiles uncalibrated."""
    scaled, targets = data.scaled, data.series.targets
    metrics, warnings, val_report = {}, [], None
    if len(scaled["val"].inputs):
        val_report = evaluate(model, scaled, config, data.normalizer, targets, "val")
        checked = check_quality(val_report, config.model.kind, config.data.is_panel)
        tracking.log_metrics(tracking_uri, run_id, checked.metrics)
        tracking.set_tags(tracking_uri, run_id, checked.tags)
        metrics.update(checked.metrics)
        warnings += [checked.message] if checked.message else []
    point_intervals = (
        val_report is not None
        and config.evaluate.intervals
        and config.evaluate.calibration == "conformal"
    )
    calibration = intervals.Calibration()
    if report.quantiles is not None or point_intervals:
        scores, calibration = calibrate_intervals(
            val_report, report, config, targets, tracking_uri, run_id
        )
        metrics.update(scores)
    return metrics, calibration, warnings


@contextlib.contextmanager
def _checkpoint_folder(config: ExperimentConfig, series, tracking_uri: str, run_id):
    """This training's checkpoint folder (None when `train.resume` is off)."""
    if not config.train.resume:
        yield None
        return
    key = checkpoint.training_key(
        {**config.training_fields(), "experiment": config.experiment_name},
        series.digest,
    )
    root = tracking.checkpoint_root(tracking_uri)
    with checkpoint.claim(root, key, run_id) as folder:
        yield folder


def _log_panel_results(tracking_uri, run_id, report, targets) -> None:
    """A panel's per-series table, its skill histogram and the best, median
    and worst series of the model."""
    table = report.series_table
    tracking.log_table(tracking_uri, run_id, table, "series_metrics.parquet")
    figure = plots.skill_distribution(table)
    tracking.log_figure(
        tracking_uri, run_id, figure, "plots/series_skill.png", image_key=True
    )
    plots.close(figure)
    picks = plots.pick_series(table)
    for k, target in enumerate(targets if picks else ()):
        figure = plots.panel_examples(report, picks, target, k)
        name = tracking.safe_name(target)
        tracking.log_figure(tracking_uri, run_id, figure, f"plots/series_{name}.png")
        plots.close(figure)


def _log_forecast_figures(tracking_uri, run_id, report, targets) -> None:
    for k, target in enumerate(targets):
        figure = plots.forecast_vs_actual(
            report.time_index,
            report.actual[:, 0, k],
            {name: values[:, 0, k] for name, values in report.forecasts.items()},
            target,
        )
        name = tracking.safe_name(target)
        tracking.log_figure(
            tracking_uri, run_id, figure, f"plots/forecast_{name}.png", image_key=True
        )
        plots.close(figure)
