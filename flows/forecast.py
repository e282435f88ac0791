"""`rnnflow forecast`: the champion (or any logged forecaster) forecasts every
series from the newest data, and the forecast is kept in the forecast store
and logged as an MLflow run (`rnnflow.role: forecast`).

Run it on a schedule (`rnnflow deploy`) and the store fills with what the
model said at each origin, for monitoring to check against the actuals
that arrive later. `--as-of T` forecasts as of a past time from the rows up
to T only (a backfill: monitoring then has a history from day one).
"""

from pathlib import Path

from prefect import flow

from components import tracking
from components.config.schema import ExperimentConfig
from components.data import ingest
from components.serving.forecast_store import ForecastStore, origin_label
from components.serving.rows import rows_up_to
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
    """Forecast every series after its last row (up to `as_of` when given)
    with `model_uri` (default: the registered champion), store the rows under
    their origin and log the run."""
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(tracking_uri)
    name = config.registered_model_name
    model_uri = model_uri or f"models:/{name}@{registry.CHAMPION}"
    forecaster = packaging.load_forecaster(model_uri, tracking_uri)
    frame, _ = forecaster.request_frame(ingest.read_raw(config.data))
    time_column = config.data.time_column
    if as_of is not None:
        frame = rows_up_to(frame, time_column, as_of)
    origin = frame[time_column].max() if time_column else len(frame) - 1
    label = origin_label(origin)
    forecast = forecaster.forecast(frame)
    version = _version_of(model_uri, tracking_uri, name)
    if "time" not in forecast:  # no frequency to step by: rows ahead of the origin
        numeric = isinstance(origin, (int, float)) and not isinstance(origin, bool)
        ahead = forecaster.window.offset + forecast["step"]
        forecast = forecast.assign(time=origin + ahead if numeric else None)
    rows = forecast.assign(
        series=forecast["series"] if "series" in forecast else config.name,
        forecaster=forecast["forecaster"] if "forecaster" in forecast else "network",
        model_uri=model_uri,
        model_version=version or "",
    )
    first = ["series", "step", "time", "forecaster"]
    rows = rows[first + [c for c in rows.columns if c not in first]]
    run_id = tracking.start_run(
        tracking_uri, config.experiment_name, f"forecast · {config.name} · {label}",
        {"rnnflow.role": "forecast", "origin": label, "model_uri": model_uri,
         "model_version": version or "-"},
    )  # fmt: skip
    with tracking.failing_marks_run(tracking_uri, run_id):
        rows = rows.assign(run_id=run_id)
        store = ForecastStore(store_root(config, tracking_uri))
        path = store.write(origin, rows)
        counts = rows.groupby("forecaster")["series"].nunique().to_dict()
        metrics = {"rows": float(len(rows)), "series": float(rows["series"].nunique())}
        metrics.update({f"series_by_{who}": float(n) for who, n in counts.items()})
        tracking.log_metrics(tracking_uri, run_id, metrics)
        tracking.log_table(tracking_uri, run_id, rows, "forecast.parquet")
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


def _version_of(model_uri: str, tracking_uri: str, name: str) -> str | None:
    """The registered version behind a `models:/NAME@champion` URI (None for
    a run's own model)."""
    if model_uri == f"models:/{name}@{registry.CHAMPION}":
        found = registry.champion(tracking_uri, name)
        return str(found.version) if found else None
    if model_uri.startswith("models:/") and "/" in model_uri[len("models:/") :]:
        return model_uri.rsplit("/", 1)[1]
    return None
