"""The retrain flow: newest data -> challenger -> champion/challenger gate ->
registered version, with alias `champion` moved only when the challenger is
really better.

Order matters for safety: the version is registered and tagged before the
alias moves, and the alias move is the last step, so a retraining that fails
anywhere leaves the champion where it was. At most one retraining per
registered model runs at a time (a Prefect global concurrency limit of 1).

Example:
    >>> from components.config import load_experiment
    >>> retrain_flow(load_experiment("gas_furnace"))["decision"]
    'promoted'
"""

import contextlib
from collections.abc import Iterator

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from components import tracking
from components.common.errors import DataError
from components.config.schema import ExperimentConfig, RetrainSpec, SplitSpec
from components.data import ingest
from components.evaluation import gate
from components.evaluation.holdout import Holdout
from components.serving.forecaster import Forecaster
from components.tracking import packaging
from components.tracking import registry as model_registry
from flows.results import RetrainResult
from flows.steps import PreparedData, prepare_data
from flows.train import open_run, train_in_run

_task = task(cache_policy=NO_CACHE)


@_task
def find_champion(tracking_uri: str, name: str) -> model_registry.Version | None:
    """The current champion version of `name`, if any."""
    found = model_registry.champion(tracking_uri, name)
    get_run_logger().info(
        "champion of %r: %s", name, f"version {found.version}" if found else "none yet"
    )
    return found


@_task
def score_holdout(
    challenger: Forecaster,
    champion: model_registry.Version | None,
    data: PreparedData,
    tracking_uri: str,
    retrain: RetrainSpec,
    raw: pd.DataFrame,
    split: SplitSpec,
) -> tuple[gate.Decision, dict[str, float]]:
    """Champion, challenger and persistence on the newest holdout (the test
    period of the new data `raw`, which neither model trained on): in
    original units for one series, in units of each series' scale for a
    panel (the challenger's, so both are judged alike and every series
    counts alike), compared on `retrain.metric`. The challenger's served
    intervals are scored there too (`holdout_coverage_<L>`); with
    `retrain.max_coverage_error`, one that misses its level by more is
    rejected."""
    since = data.holdout_from(split)
    scale, only = challenger.scale_of(), set(challenger.series_names) or None
    theirs = None
    if champion is not None:
        try:
            model = packaging.load_forecaster(champion.uri, tracking_uri)
            only = _shared_series(challenger, model, only)
            theirs = model.holdout(raw, since, scale, only)
        except DataError as exc:
            theirs = str(exc)
    ours = challenger.holdout(raw, since, scale, only)
    decision, metrics = gate.judge(
        ours, theirs, retrain.min_improvement,
        champion.version if champion else None,
        unit=challenger.HOLDOUT_UNIT, metric=retrain.metric,
    )  # fmt: skip
    if only and isinstance(theirs, Holdout) and ours.index.equals(theirs.index):
        metrics.update(gate.series_record(ours, theirs))
    coverage, miss = gate.holdout_coverage(ours, retrain.max_coverage_error)
    metrics.update(coverage)
    if miss and decision.promote:
        decision = gate.Decision(gate.REJECTED, f"challenger {miss}")
    return decision, metrics


def _shared_series(challenger: Forecaster, champion: Forecaster, only):
    """The series both models know (None for one series each).

    Raises:
        DataError: the champion is of another type, or knows none of them.
    """
    if champion.TYPE != challenger.TYPE:
        raise DataError(
            f"it forecasts {champion.TYPE!r} data, the challenger {challenger.TYPE!r}"
        )
    if only is None:
        return None
    only = only & set(champion.series_names)
    if not only:
        raise DataError("it knows none of the new data's series")
    return only


@_task
def register_and_decide(
    tracking_uri: str,
    name: str,
    run_id: str,
    forecaster_uri: str,
    decision: gate.Decision,
    metrics: dict[str, float],
    data_digest: str,
    about: dict[str, str] | None = None,
) -> model_registry.Version:
    """Register the challenger with its evidence and what it forecasts
    (`about`: kind, data source, targets, window); move `champion` last, and
    only on a promotion."""
    about = about or {}
    tags = {
        **about,
        **{k: f"{v:.6g}" for k, v in metrics.items()},
        "data_digest": data_digest,
        "decision": decision.decision,
        "reason": decision.reason,
    }
    if not decision.promote:
        tags["rejected"] = "true"
    what = (
        f"{about.get('model_kind', 'a network')} forecasting "
        f"{about.get('targets', 'its targets')} of {about.get('data_source', 'its data')}, "
        f"{about.get('horizon', '?')} step(s) ahead from {about.get('input_width', '?')}"
    )
    version = model_registry.register(
        tracking_uri, name, forecaster_uri, run_id, tags,
        description=f"{what}. {decision.decision}: {decision.reason}",
        model_description=(
            f"`rnnflow retrain` versions of {what}. The alias `champion` is the "
            "version in use; every version's tags hold its holdout scores and "
            "the gate's decision."
        ),
    )  # fmt: skip
    if decision.promote:
        model_registry.promote(tracking_uri, version)
    get_run_logger().info(
        "%s version %s of %r: %s", decision.decision, version.version, name,
        decision.reason,
    )  # fmt: skip
    return version


@flow(name="rnnflow-retrain", flow_run_name="retrain-{config.name}")
def retrain_flow(config: ExperimentConfig) -> RetrainResult:
    """Retrain once; return the decision (promoted | rejected | skipped)."""
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.uri)
    tracking.open_store(tracking_uri)
    name = config.registered_model_name
    logger = get_run_logger()
    with _retraining_slot(name, config.retrain.wait_seconds) as acquired:
        if not acquired:
            reason = (
                f"another retraining of {name!r} is running (waited "
                f"{config.retrain.wait_seconds:g} s)"
            )
            logger.warning("skipped: %s", reason)
            return _outcome(None, gate.Decision(gate.SKIPPED, reason), None, None)
        data = prepare_data(config)
        champion = find_champion(tracking_uri, name)
        run_id = open_run(
            config, data.series, tracking_uri, run_name=f"retrain · {name}",
            role="retrain",
        )  # fmt: skip
        if champion and champion.tags.get("data_digest") == data.series.digest:
            decision = gate.Decision(
                gate.SKIPPED,
                f"no new data: digest {data.series.digest} is what champion "
                f"v{champion.version} was trained on",
            )
            logger.info("skipped: %s", decision.reason)
            _close(tracking_uri, run_id, decision, {}, None, champion)
            return _outcome(run_id, decision, None, champion.version)
        with tracking.failing_marks_run(tracking_uri, run_id):
            trained, start_from = config, None
            if config.retrain.warm_start and champion:
                trained, start_from = warm_settings(config, champion, tracking_uri)
            result = train_in_run(
                trained, data, tracking_uri, run_id, finish=False, start_from=start_from
            )
            decision, metrics = score_holdout(
                result.forecaster,
                champion,
                data,
                tracking_uri,
                config.retrain,
                ingest.read_raw(config.data),
                config.split,
            )  # fmt: skip
            version = register_and_decide(
                tracking_uri,
                name,
                run_id,
                result.forecaster_uri,
                decision,
                metrics,
                data.series.digest,
                {
                    "model_kind": config.model.kind,
                    "data_source": data.series.source,
                    "targets": ", ".join(data.series.targets),
                    "horizon": str(config.window.horizon),
                    "input_width": str(config.window.input_width),
                },
            )
            current = version if decision.promote else champion
            _close(tracking_uri, run_id, decision, metrics, version, current)
        return _outcome(
            run_id, decision, version.version, current.version if current else None
        )


def warm_settings(config: ExperimentConfig, champion, tracking_uri: str):
    """(the config a warm start trains with: `retrain.warm_epochs`, default a
    quarter of `train.epochs`, and the champion's resolved `auto` settings;
    ("champion vN", its Keras model))."""
    spec = config.retrain
    epochs = spec.warm_epochs or max(1, config.train.epochs // 4)
    # `auto` settings as the champion resolved them: the same network to load
    # its weights into (resolved again on the new rows, they may differ)
    tags = tracking.run_tags(tracking_uri, champion.run_id)
    model = {key: tags[f"auto_{key}"] for key in ("window_norm", "skip")
             if getattr(config.model, key) == "auto" and f"auto_{key}" in tags}  # fmt: skip
    trained = config.model_copy(update={
        "train": config.train.model_copy(update={
            "epochs": epochs,
            "learning_rate": spec.warm_learning_rate or config.train.learning_rate,
        }),
        "model": config.model.model_copy(update=model),
    })  # fmt: skip
    forecaster = packaging.load_forecaster(champion.uri, tracking_uri)
    return trained, (f"champion v{champion.version}", forecaster.model)


@contextlib.contextmanager
def _retraining_slot(name: str, wait_seconds: float) -> Iterator[bool]:
    """Hold the single slot of global concurrency limit `rnnflow-retrain-NAME`;
    yields False when it stays taken for `wait_seconds`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    limit = f"rnnflow-retrain-{tracking.safe_name(name)}"
    with get_client(sync_client=True) as client:
        try:  # read first: creating one that exists makes the server log a traceback
            client.read_global_concurrency_limit_by_name(limit)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=limit, limit=1)
                )
            except ObjectAlreadyExists:  # another retraining created it meanwhile
                pass
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(
                concurrency(limit, occupy=1, timeout_seconds=wait_seconds, strict=True)
            )
        except TimeoutError:
            yield False
            return
        yield True


def _close(tracking_uri, run_id, decision, metrics, version, champion) -> None:
    """Record the decision on the MLflow run and as a Prefect artifact; end the run."""
    tags = {
        "retrain_decision": decision.decision,
        "retrain_reason": decision.reason,
        "mlflow.note.content": f"**{decision.decision}**: {decision.reason}",
    }
    if version is not None:
        tags["registered_version"] = version.version
    if champion is not None:
        tags["champion_version"] = champion.version
    tracking.set_tags(tracking_uri, run_id, tags)
    if metrics:
        tracking.log_metrics(tracking_uri, run_id, metrics)
    rows = "\n".join(f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items()))
    create_markdown_artifact(
        key="retrain-decision",
        markdown=f"## {decision.decision}\n\n{decision.reason}\n\n"
        f"MLflow run `{run_id}`\n\n| metric | value |\n|---|---|\n{rows}\n",
        description=f"retrain: {decision.decision}",
    )
    tracking.finish_run(tracking_uri, run_id)


def _outcome(run_id, decision: gate.Decision, version, champion_version) -> RetrainResult:
    return RetrainResult(
        run_id, decision.decision, decision.reason, version, champion_version
    )
