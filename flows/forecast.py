"""`rnnflow forecast`: the champion (or any logged forecaster) forecasts every
series from the newest data, and the forecast is kept in the forecast store
and logged as an MLflow run (`rnnflow.role: forecast`).

Run it on a schedule (`rnnflow deploy`) and the store fills with what the
model said at each origin, for monitoring to check against the actuals
that arrive later. `--as-of T` forecasts as of a past time from the rows up
to T only, `--as-of A..B` at every time from A to B (a backfill: monitoring
then has a history from day one).
"""

import tempfile
from pathlib import Path

import pandas as pd
from prefect import flow

from components import tracking
from components.config.schema import ExperimentConfig
from components.data import ingest
from components.evaluation import live_plots, monitoring, plots
from components.serving.forecast_store import ForecastStore, origin_label
from components.serving.rows import backfill_origins, rows_up_to
from components.tracking import packaging, registry
from flows.results import ForecastResult


def store_root(config: ExperimentConfig, tracking_uri: str):
    """`forecast.store`, or `forecasts/<experiment>` beside the MLflow store."""
    if config.forecast.store:
        return Path(config.forecast.store).expanduser()
    return tracking.local_state_dir(tracking_uri, "forecasts") / config.experiment_name


@flow(name="rnnflow-forecast", flow_run_name="{config.name}-forecast")
def forecast_flow(
    config: ExperimentConfig, model_uri: str | None = None, as_of: str | None = None
) -> ForecastResult:
    """Forecast every series after its last row (up to `as_of` when given;
    at every time of a range `START..END`) with `model_uri` (default: the
    registered champion), store the rows under their origin and log one run."""
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(tracking_uri)
    if config.data.stream:
        return _forecast_streamed(config, tracking_uri, model_uri, as_of)
    name = config.registered_model_name
    model_uri = model_uri or f"models:/{name}@{registry.CHAMPION}"
    forecaster = packaging.load_forecaster(model_uri, tracking_uri)
    frame, _ = forecaster.request_frame(ingest.read_raw(config.data))
    time_column = config.data.time_column
    version = _version_of(model_uri, tracking_uri, name)
    asked = [None] if as_of is None else backfill_origins(frame, time_column, as_of)
    made = {}  # origin -> its rows, oldest first
    for point in asked:
        rows_seen = frame if point is None else rows_up_to(frame, time_column, point)
        origin = rows_seen[time_column].max() if time_column else len(rows_seen) - 1
        made[origin] = _forecast_rows(forecaster, rows_seen, origin, config.name)

    def plot(run_id, latest):
        _log_plot(tracking_uri, run_id, config, forecaster, frame, latest)

    return _keep(config, tracking_uri, made, model_uri, version, plot=plot)


def _keep(config, tracking_uri: str, made: dict, model_uri: str, version, tags=None,
          plot=None) -> ForecastResult:
    """Store each origin's rows (`made`: origin -> rows, oldest first) and
    log them as one `forecast` run, with `plot(run_id, newest rows)` inside."""
    labels = [origin_label(o) for o in made]
    label = labels[0] if len(labels) == 1 else f"{labels[0]}..{labels[-1]}"
    run_id = tracking.start_run(
        tracking_uri, config.experiment_name, f"forecast · {config.name} · {label}",
        {"rnnflow.role": "forecast", "origin": label, "model_uri": model_uri,
         "model_version": version or "-", **(tags or {})},
    )  # fmt: skip
    with tracking.failing_marks_run(tracking_uri, run_id):
        store = ForecastStore(store_root(config, tracking_uri))
        kept = []
        for origin, rows in made.items():
            rows = rows.assign(
                model_uri=model_uri, model_version=version or "", run_id=run_id
            )
            path = store.write(origin, rows)
            kept.append(rows.assign(origin=origin_label(origin)))
        rows = pd.concat(kept, ignore_index=True)
        latest = kept[-1]
        counts = latest.groupby("forecaster")["series"].nunique().to_dict()
        metrics = {"rows": float(len(rows)), "series": float(latest["series"].nunique()),
                   "origins": float(len(made))}  # fmt: skip
        metrics.update({f"series_by_{tracking.safe_name(who)}": float(n)
                        for who, n in counts.items()})  # fmt: skip
        tracking.log_metrics(tracking_uri, run_id, metrics)
        tracking.log_table(tracking_uri, run_id, rows, "forecast.parquet")
        if plot:
            plot(run_id, latest)
        tracking.finish_run(tracking_uri, run_id)
    return ForecastResult(
        run_id=run_id,
        experiment=config.experiment_name,
        origin=label,
        model_uri=model_uri,
        model_version=version,
        store=str(path.parent.parent),
        metrics=metrics,
        forecast=rows,
    )


def _forecast_streamed(config, tracking_uri: str, model_uri: str | None, as_of):
    """A streamed panel (`data.stream`): a streamed run's network forecasts
    every series file by file; only the forecast (series x horizon rows) is
    held, then stored and logged like any other origin's."""
    from components.common.errors import ConfigError
    from flows.train_stream import predict_streamed

    if as_of:
        raise ConfigError(
            "--as-of: a streamed panel is forecast from its newest rows only (a "
            "backfill would read every file once per origin); forecast it as each "
            "origin's files arrive instead."
        )
    with tempfile.TemporaryDirectory() as scratch:
        found = predict_streamed(
            config, tracking_uri, model_uri, str(Path(scratch) / "f.parquet"), lambda _m: None
        )
        rows = pd.read_parquet(found["output"])
    data = config.data
    rows = rows.rename(columns={data.id_column: "series", data.time_column: "time"})
    first = ["series", "step", "time", "forecaster"]
    rows = rows[first + [c for c in rows.columns if c not in first]]
    tags = {"rnnflow.stream": "true", "rnnflow.forecast_of_run": found["run_id"]}
    return _keep(config, tracking_uri, {found["origin"]: rows}, found["model_uri"], None, tags)


def _forecast_rows(forecaster, frame, origin, name: str) -> pd.DataFrame:
    """The store's rows for one origin: series, step, time, forecaster first."""
    forecast = forecaster.forecast(frame)
    if "time" not in forecast:  # no frequency to step by: rows ahead of the origin
        numeric = isinstance(origin, (int, float)) and not isinstance(origin, bool)
        ahead = forecaster.window.offset + forecast["step"]
        forecast = forecast.assign(time=origin + ahead if numeric else None)
    rows = forecast.assign(
        series=forecast["series"] if "series" in forecast else name,
        forecaster=forecast["forecaster"] if "forecaster" in forecast else "network",
    )
    first = ["series", "step", "time", "forecaster"]
    return rows[first + [c for c in rows.columns if c not in first]]


def _log_plot(tracking_uri, run_id, config, forecaster, frame, rows) -> None:
    """`forecast.png`: the newest origin's forecast after each series' last
    observed rows (a few series of a panel)."""
    loaded = ingest.series_from_frame(frame, config.data, "forecast input")
    targets = [t for t in loaded.targets if t in rows.columns]
    history = monitoring.actual_rows(loaded.frame, loaded.layout, config.name, targets)
    tail = 3 * forecaster.window.horizon + forecaster.window.input_width
    shown = {s: (t[-tail:], v[-tail:, 0]) for s, (t, v) in history.items()}
    fig = live_plots.forecast_paths(shown, rows, targets[0])
    tracking.log_figure(tracking_uri, run_id, fig, "forecast.png")
    plots.close(fig)


def _version_of(model_uri: str, tracking_uri: str, name: str) -> str | None:
    """The registered version behind a `models:/NAME@champion` URI (None for
    a run's own model)."""
    if model_uri == f"models:/{name}@{registry.CHAMPION}":
        found = registry.champion(tracking_uri, name)
        return str(found.version) if found else None
    if model_uri.startswith("models:/") and "/" in model_uri[len("models:/") :]:
        return model_uri.rsplit("/", 1)[1]
    return None
