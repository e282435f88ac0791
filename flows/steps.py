"""The steps every flow shares, from a data spec to a scored model: load ->
split -> normalize -> windows -> settings -> build -> evaluate. Each task is a
thin wrapper over one component function; `flows.train` runs them inside an
MLflow run, `flows.backtest` once per fold, `flows.compare` and `flows.tune`
once per child.

Data is validated here (ingest, split, normalize) before any MLflow run is
opened, so bad input leaves nothing behind.
"""

from dataclasses import dataclass

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from components.config.schema import (
    DataSpec,
    ExperimentConfig,
    ModelSpec,
    SplitSpec,
    TrainSpec,
    WindowSpec,
)
from components.data import ingest, panel, preprocess
from components.data.windowing import make_dataset, make_windows, window_starts
from components.evaluation import backtest
from components.evaluation import evaluate as evaluation
from components.models.common import target_positions
from components.models.registry import cudnn_blockers
from components.models.selection import resolve_auto
from components.training import builder, compiled_loop
from components.training import fit as training

# Tasks pass arrays, datasets and models in memory; nothing here is worth caching.
_task = task(cache_policy=NO_CACHE)


@_task
def load_data(spec: DataSpec) -> ingest.LoadedSeries:
    """Read and validate the series."""
    series = ingest.load_series(spec)
    logger = get_run_logger()
    logger.info(
        "loaded %s: %d rows, features %s, targets %s, frequency %s",
        series.source,
        len(series.frame),
        series.features,
        series.targets,
        series.frequency or "irregular/unknown",
    )
    if series.missing_counts:
        logger.warning(
            "missing values per column %s, filled by data.missing=%s per split",
            series.missing_counts,
            spec.missing,
        )
    return series


@_task
def split_data(
    series: ingest.LoadedSeries, data: DataSpec, split: SplitSpec, window: WindowSpec
) -> dict[str, preprocess.PreparedSplit]:
    """Chronological train/val/test, each cleaned and transformed on its own and
    long enough for one window; a panel is cut at the same time for every
    series."""
    if series.layout is not None:
        return _split_panel(series, data, split, window)
    splits = preprocess.split_chronologically(series.frame, split)
    prepared = {
        name: preprocess.prepare_split(
            frame, data, series.targets, keep=series.calendar_columns,
            lead=preprocess.known_lead(data, window),
        )  # fmt: skip
        for name, frame in vars(splits).items()
    }
    sizes = {name: len(part.frame) for name, part in prepared.items()}
    preprocess.check_window_fits(sizes, window)
    get_run_logger().info("split sizes %s", sizes)
    return prepared


def _split_panel(series, data, split, window) -> dict[str, preprocess.PreparedSplit]:
    found = panel.split_panel(
        series.frame, series.layout, split, data, window, series.targets,
        keep=series.shared_columns,
    )  # fmt: skip
    logger = get_run_logger()
    if found.skipped:
        logger.warning(
            "left out %d series with fewer training rows than one window (%d)%s: %s",
            len(found.skipped), window.span,
            "" if data.short_series == "skip" else
            f" or than padding needs ({window.offset + window.horizon + 1})",
            _some(found.skipped),
        )  # fmt: skip
    if found.padded:
        logger.info(
            "padded %d short series in front (first row repeated) to lend "
            "windows: %s", len(found.padded), _some(found.padded),
        )  # fmt: skip
    windows = {
        name: len(window_starts(len(part.frame), window, part.bounds))
        for name, part in found.parts.items()
    }
    counts = {
        name: f"{int(np.sum(np.diff(part.bounds) >= window.span))} series, "
        f"{windows[name]} windows"
        for name, part in found.parts.items()
    }
    logger.info(
        "panel of %d series cut at val %s, test %s: %s",
        len(series.layout.ids), *found.cut, counts,
    )  # fmt: skip
    preprocess.check_panel_windows(windows, window)
    return found.parts


def _some(names: tuple[str, ...], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(map(repr, names[:shown])) + more


@_task
def normalize(
    prepared: dict[str, preprocess.PreparedSplit],
    series: ingest.LoadedSeries,
    scale: str = "series",
    id_channel: bool = False,
) -> tuple[preprocess.Normalizer, dict[str, preprocess.ScaledSplit]]:
    """Fit on train only (a panel: each series on its own training rows, by
    `data.scale`); scale every split with those statistics. `id_channel`:
    each row's series index as the last input (`model.id_embedding`)."""
    if series.layout is not None:
        normalizer = preprocess.fit_series_normalizer(
            prepared["train"], series.shared_columns, scale
        )
    else:
        normalizer = preprocess.fit_normalizer(prepared["train"].frame)
    scaled = {
        name: preprocess.scale_split(
            part, normalizer, series.features, series.targets, id_channel
        )
        for name, part in prepared.items()
    }
    return normalizer, scaled


@_task
def make_datasets(
    scaled: dict[str, preprocess.ScaledSplit],
    window: WindowSpec,
    train: TrainSpec,
    start_epoch: int = 0,
) -> dict:
    """The training and validation windows, shuffled per epoch for training
    (in the order an uninterrupted training sees from `start_epoch` on): held
    in memory for the compiled loop, or streamed tf.data pipelines for `fit`."""
    sizes = {name: len(scaled[name].inputs) if name in scaled else 0
             for name in ("train", "val")}  # fmt: skip
    n_inputs, n_targets = (
        scaled["train"].inputs.shape[1],
        scaled["train"].targets.shape[1],
    )
    compiled = training.use_compiled_loop(train, sizes, window, n_inputs, n_targets)
    get_run_logger().info(
        "training loop: %s", "compiled (windows in memory)" if compiled else "fit"
    )

    def windows(split: str, shuffle: bool = False, seed: int | None = None):
        part = scaled[split]
        if compiled:  # each epoch's order comes from its number, not a counter
            return compiled_loop.materialize(
                part.inputs, part.targets, window, shuffle, seed, part.bounds
            )
        return make_dataset(
            part.inputs,
            part.targets,
            window,
            train.batch_size,
            shuffle,
            seed,
            start_epoch,
            part.bounds,
            train.windows_per_series,
        )

    datasets = {"train": windows("train", train.shuffle, train.seed)}
    if sizes["val"]:
        datasets["val"] = windows("val")
    return datasets


@_task
def choose_settings(
    spec: ModelSpec,
    window: WindowSpec,
    scaled: dict[str, preprocess.ScaledSplit],
    positions: tuple[int, ...] = (),
) -> tuple[ModelSpec, dict[str, str]]:
    """Resolve `auto` in `model.window_norm` / `model.skip` by the validation
    MSE of the linear fit in each setting; return the spec to build and the
    run tags that record the choice (none when nothing was `auto`)."""
    if "auto" not in (spec.window_norm, spec.skip):
        return spec, {}
    windows = {
        name: make_windows(
            scaled[name].features, scaled[name].targets, window, scaled[name].bounds
        )
        for name in ("train", "val")
    }
    resolved, choice = resolve_auto(spec, windows["train"], windows["val"], positions)
    get_run_logger().info("auto: %s", choice.describe())
    tags = {
        "auto_window_norm": resolved.window_norm,
        "auto_skip": resolved.skip,
        "auto_choice": choice.describe(),
    }
    return resolved, tags


@_task
def build(
    spec: ModelSpec,
    train: TrainSpec,
    window: WindowSpec,
    train_split: preprocess.ScaledSplit,
    positions: tuple[int, ...] = (),
):
    """Seed, build and compile the registered architecture under its policy,
    a linear skip at its least-squares start (`builder.build_for_training`)."""
    logger = get_run_logger()
    for option in cudnn_blockers(spec):
        logger.warning("%s keeps LSTM/GRU off the fused cuDNN kernel on a GPU", option)
    built = builder.build_for_training(spec, train, window, train_split, positions)
    logger.info("built %s", built.describe())
    return built.model


@_task
def evaluate(
    model,
    scaled,
    config: ExperimentConfig,
    normalizer,
    targets,
    split: str = "test",
    where: str = "",
):
    """Model and baselines on the windows of one split (`test`, `val`), both
    units; `where` names the split in errors when the name does not say it.
    The classical baselines score the test split, and every split of a
    panel (`_references`)."""
    test = split == "test"
    return evaluation.evaluate_on_test(
        model,
        scaled["train"],
        scaled[split],
        config.window,
        normalizer,
        targets,
        config.data.transform,
        config.evaluate.season,
        who=f"{config.model.kind} on the {where or split + ' split'}",
        split=split,
        between=scaled["val"] if test else None,
        classical=tuple(dict.fromkeys(
            (*_references(config, scaled, test), *combined(config))
        )),
        references_on=config.cluster.address if config.cluster.on_dask else None,
        combine=combined(config),
    )  # fmt: skip


def combined(config: ExperimentConfig) -> tuple[str, ...]:
    """`model.combine` as names (`auto` not yet resolved: none)."""
    combine = config.model.combine
    return () if combine == "auto" else tuple(combine)


def _references(config: ExperimentConfig, scaled, test: bool) -> tuple[str, ...]:
    """The classical references scored on a split: every split of a panel
    (the guard rail checks the network against them on validation), the
    test split of one series."""
    panel = scaled["train"].bounds is not None
    return config.evaluate.classical_models(panel) if (test or panel) else ()


@dataclass(frozen=True)
class PreparedData:
    """Validated, split and scaled data, shared by every model trained on it."""

    series: ingest.LoadedSeries
    normalizer: preprocess.Normalizer
    scaled: dict[str, preprocess.ScaledSplit]
    folds: tuple[backtest.Fold, ...] = ()
    target_positions: tuple[int, ...] = ()  # window_norm, shared skip, auto

    def holdout_from(self, split: SplitSpec):
        """Time of the first test target: where the retrain gate's holdout
        starts (a panel's test split begins with its windows' inputs)."""
        index = self.series.frame.index
        if self.series.layout is None:
            return self.scaled["test"].index[0]
        return panel.cut_time(index, panel.time_cut(index, split).test_from)


def prepare_data(
    config: ExperimentConfig, series: ingest.LoadedSeries | None = None
) -> PreparedData:
    """ingest -> split -> normalize (and plan the backtest folds): every check
    that can fail before training. `series`: already loaded (the split and
    the statistics are redone for `config`, e.g. another window)."""
    series = series or load_data(config.data)
    positions = target_positions(series.features, series.targets, config.model)
    prepared = split_data(series, config.data, config.split, config.window)
    normalizer, scaled = normalize(
        prepared, series, config.data.scale, config.model.id_embedding > 0
    )
    folds = backtest.plan_folds(
        backtest.axis_length(series), config.split, config.evaluate.backtest,
        config.window,
    )  # fmt: skip
    return PreparedData(series, normalizer, scaled, tuple(folds), positions)


def prepare_all_rows(config: ExperimentConfig, data: PreparedData):
    """Every row of the data as one training split, with statistics fitted
    on all of them (`train.refit`): (the normalizer, {"train": scaled})."""
    series = data.series
    if series.layout is not None:
        prepared = panel.all_rows(
            series.frame, series.layout, config.data, config.window,
            series.targets, series.shared_columns,
        )  # fmt: skip
    else:
        prepared = preprocess.prepare_split(
            series.frame, config.data, series.targets,
            keep=series.calendar_columns,
            lead=preprocess.known_lead(config.data, config.window),
        )  # fmt: skip
    normalizer, scaled = normalize(
        {"train": prepared}, series, config.data.scale, config.model.id_embedding > 0
    )
    return normalizer, scaled


def fit_summary(fit_result: training.FitResult) -> dict[str, float]:
    summary = {
        "train_seconds": fit_result.seconds,
        "epochs_trained": fit_result.epochs_trained,
        "best_epoch": fit_result.best_epoch,
    }
    val_loss = fit_result.history.get("val_loss") or []
    if fit_result.best_epoch and len(val_loss) >= fit_result.best_epoch:
        # the kept weights' validation loss (`val_loss` is the last epoch's)
        summary["best_val_loss"] = float(val_loss[fit_result.best_epoch - 1])
    if fit_result.resumed_from_epoch is not None:
        summary["resumed_from_epoch"] = fit_result.resumed_from_epoch
    return summary
