"""Guard rails: say plainly when a network does not beat the simple references.

A forecaster judges a tool by whether it beats persistence and a linear
autoregression on their data without hand tuning, and by whether it says so
when it does not. The check reads the validation split (never the test split,
which stays for the final score), so the advice can be acted on before a
result is reported.
"""

from dataclasses import dataclass, field

# One point of skill (1 % of persistence's MSE): a network must beat
# persistence by more than this (level with a free forecast, it has learned
# nothing: a random walk), and may trail the linear baseline by up to this
# (level with it; on a clean sine both are near zero).
SKILL_TOLERANCE = 0.01

VAL_METRICS = (
    "val_mse",
    "baseline_persistence_val_mse",
    "baseline_linear_val_mse",
)

# What usually helps when a network loses to each reference.
ADVICE = {
    "persistence": (
        "on a drifting or random-walk-like series try `model.window_norm=last` "
        "(the network forecasts the change from the last value) or "
        "`data.transform=diff`"
    ),
    "linear": (
        "try a longer `window.input_width`, `model.window_norm=last`, or more "
        "`train.epochs` / `train.patience`; the linear autoregression may simply "
        "be the better model for this series"
    ),
}


@dataclass(frozen=True)
class QualityCheck:
    """The network against persistence and the linear baseline on validation.

    Attributes:
        losses: references the network does not beat ("persistence", "linear").
        message: one sentence with the numbers and what to try; None when the
            network beats both.
        metrics: the `VAL_METRICS` it was decided on.
    """

    losses: tuple[str, ...]
    message: str | None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        """Run tags: `quality_check` (pass | fail) and the warning if any."""
        tags = {"quality_check": "fail" if self.losses else "pass"}
        if self.message:
            tags["quality_warning"] = self.message
        return tags


def check_validation(
    metrics: dict[str, float], who: str = "the network", windows: int | None = None
) -> QualityCheck:
    """Compare `val_mse` with the baselines' (normalized units, same windows).

    The network loses to persistence when its MSE is not below persistence's
    by more than `SKILL_TOLERANCE` x persistence's MSE; to the linear baseline
    when it is above the linear one's by more than that.

    Args:
        metrics: holds `VAL_METRICS`.
        windows: how many validation windows the metrics average, said in the
            message (a handful of windows makes a weak verdict).
    """
    metrics = {k: float(metrics[k]) for k in VAL_METRICS}
    model = metrics["val_mse"]
    references = {
        "persistence": metrics["baseline_persistence_val_mse"],
        "linear": metrics["baseline_linear_val_mse"],
    }
    point = SKILL_TOLERANCE * references["persistence"]
    slack = {"persistence": -point, "linear": point}
    losses = tuple(
        name for name, mse in references.items() if not model < mse + slack[name]
    )
    if not losses:
        return QualityCheck((), None, metrics)
    named = " or ".join(
        f"{'the linear baseline' if n == 'linear' else n} ({references[n]:.4g})"
        for n in losses
    )
    where = "the validation split" + (f" ({windows} windows)" if windows else "")
    return QualityCheck(
        losses,
        f"{who} (val mse {model:.4g}) does not beat {named} on {where}: "
        f"{ADVICE[losses[0]]}.",
        metrics,
    )


def check_each_kind(runs: list[tuple[str, dict[str, float]]]) -> dict[str, QualityCheck]:
    """`check_validation` per model kind on the mean over its runs (seeds) of
    `runs` = [(kind, metrics), ...]; runs without validation metrics are left
    out."""
    grouped: dict[str, list[dict[str, float]]] = {}
    for kind, metrics in runs:
        if all(k in metrics for k in VAL_METRICS):
            grouped.setdefault(kind, []).append(metrics)
    return {
        kind: check_validation(
            {k: sum(m[k] for m in group) / len(group) for k in VAL_METRICS}, kind
        )
        for kind, group in grouped.items()
    }
