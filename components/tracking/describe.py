"""The run's description in the MLflow UI: one paragraph a person reads first,
what was trained on what and its test error beside the references'."""

from components.config.schema import ExperimentConfig
from components.evaluation.metrics import BASELINE_LABELS


def run_title(config: ExperimentConfig) -> str:
    """A training run's name in the MLflow UI: the kind, what kind of forecast
    when it is not a point one, the experiment and `tracking.run_label`
    (`gru · quantiles · sales · train.epochs=30`)."""
    what = " · quantiles" if config.model.quantiles else ""
    label = f" · {config.tracking.run_label}" if config.tracking.run_label else ""
    return f"{config.model.kind}{what} · {config.name}{label}"


def run_description(config: ExperimentConfig, series, metrics: dict) -> str:
    """The run's one-paragraph description in the MLflow UI: what was trained
    on what, and its test error next to the baselines'."""
    many = f", {len(series.layout.ids)} series" if series.layout is not None else ""
    parts = [
        f"**{config.model.kind}** on `{series.source}`{many} → "
        f"{', '.join(series.targets)} ({config.window.input_width} steps in, "
        f"{config.window.horizon} out)."
    ]
    scores = [f"model {metrics['test_mae_raw']:.4g}"]
    for name, label in BASELINE_LABELS.items():
        key = f"baseline_{name}_test_mae_raw"
        if key in metrics:
            scores.append(f"{label} {metrics[key]:.4g}")
    parts.append(f"Test MAE (original units): {', '.join(scores)}.")
    if config.model.quantiles:
        levels = ", ".join(f"{q:g}" for q in config.model.quantiles)
        parts.append(f"Quantile forecasts at levels {levels} (a non-crossing head).")
    if "test_mase" in metrics:
        parts.append(f"MASE {metrics['test_mase']:.3f}.")
    if "epochs_trained" in metrics:
        parts.append(
            f"{int(metrics['epochs_trained'])} epochs, best {int(metrics['best_epoch'])}."
        )
    if config.model.ensemble > 1:
        parts.append(
            f"The median of {config.model.ensemble} networks (seeds "
            f"{config.train.seed}-{config.train.seed + config.model.ensemble - 1}; "
            "each one's scores are the `member_<i>_test_*` metrics)."
        )
    if "refit_epochs" in metrics:
        parts.append(
            f"Served: the network refit on every row for {int(metrics['refit_epochs'])} "
            "epochs; the test scores are the model's before the refit."
        )
    return " ".join(parts)
