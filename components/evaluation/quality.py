"""Guard rails: say plainly when a network does not beat the simple references.

A forecaster judges a tool by whether it beats persistence and a linear
autoregression on their data without hand tuning, and by whether it says so
when it does not. The check reads the validation split (never the test split,
which stays for the final score), so the advice can be acted on before a
result is reported.
"""

from dataclasses import dataclass, field

from components.evaluation.metrics import BASELINE_LABELS

# One point of skill (1 % of persistence's score): a network must beat
# persistence by more than this (level with a free forecast, it has learned
# nothing: a random walk), and may trail the linear baseline by up to this
# (level with it; on a clean sine both are near zero).
SKILL_TOLERANCE = 0.01

# The guard rail's metric: MSE in model units on one series; on a panel the
# mean per-series MASE, what a panel is ranked by (a model can win on MSE
# through a few large series and lose on most of them).
VAL_REFERENCES = ("persistence", "linear")


def val_metrics(unit: str = "mse") -> tuple[str, ...]:
    """The metrics the guard rail needs in `unit`: the network's and the
    default references' on the validation split."""
    return (f"val_{unit}", *(f"baseline_{n}_val_{unit}" for n in VAL_REFERENCES))

# Scored on a panel's validation split too (`per_series`): the network is
# checked against the best of them, like the linear baseline.
PER_SERIES = ("ets", "theta", "arima")

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
    "classical": (
        "fitted to each series alone, the classical model forecasts this panel "
        "better: try `model.window_norm=last` or `revin`, an input of 2-3 "
        "horizons, or `model.ensemble`; see docs/panels.md"
    ),
}


@dataclass(frozen=True)
class QualityCheck:
    """The network against persistence and the linear baseline on validation.

    Attributes:
        losses: references the network does not beat ("persistence", "linear").
        message: one sentence with the numbers and what to try; None when the
            network beats both.
        metrics: the `val_metrics(unit)` it was decided on.
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
    metrics: dict[str, float],
    who: str = "the network",
    windows: int | None = None,
    unit: str = "mse",
) -> QualityCheck:
    """Compare `val_<unit>` with the baselines' (same windows; `mse` in
    normalized units, or a panel's `mase`).

    The network loses to persistence when its score is not below
    persistence's by more than `SKILL_TOLERANCE` x persistence's; to the
    linear baseline (and on a panel to the best per-series classical model,
    `PER_SERIES`) when it is above theirs by more than that.

    Args:
        metrics: holds `val_metrics(unit)`.
        windows: how many validation windows the metrics average, said in the
            message (a handful of windows makes a weak verdict).
    """
    classical = {
        name: float(metrics[f"baseline_{name}_val_{unit}"])
        for name in PER_SERIES
        if f"baseline_{name}_val_{unit}" in metrics
    }
    metrics = {k: float(metrics[k]) for k in val_metrics(unit)}
    model = metrics[f"val_{unit}"]
    references = {
        name: metrics[f"baseline_{name}_val_{unit}"] for name in VAL_REFERENCES
    }
    names = {"persistence": "persistence", "linear": "the linear baseline"}
    if classical:
        best = min(classical, key=classical.get)
        references["classical"] = classical[best]
        names["classical"] = f"per-series {BASELINE_LABELS[best]}"
        metrics[f"baseline_{best}_val_{unit}"] = classical[best]
    point = SKILL_TOLERANCE * references["persistence"]
    slack = {"persistence": -point, "linear": point, "classical": point}
    losses = tuple(
        name for name, mse in references.items() if not model < mse + slack[name]
    )
    if not losses:
        return QualityCheck((), None, metrics)
    named = " or ".join(f"{names[n]} ({references[n]:.4g})" for n in losses)
    where = "the validation split" + (f" ({windows} windows)" if windows else "")
    return QualityCheck(
        losses,
        f"{who} (val {unit} {model:.4g}) does not beat {named} on {where}: "
        f"{ADVICE[losses[0]]}.",
        metrics,
    )


def check_each_kind(
    runs: list[tuple[str, dict[str, float]]], unit: str = "mse"
) -> dict[str, QualityCheck]:
    """`check_validation` per model kind on the mean over its runs (seeds) of
    `runs` = [(kind, metrics), ...]; runs without validation metrics are left
    out."""
    needed = val_metrics(unit)
    grouped: dict[str, list[dict[str, float]]] = {}
    for kind, metrics in runs:
        if all(k in metrics for k in needed):
            grouped.setdefault(kind, []).append(metrics)
    optional = [f"baseline_{name}_val_{unit}" for name in PER_SERIES]
    out = {}
    for kind, group in grouped.items():
        keys = [*needed, *(k for k in optional if all(k in m for m in group))]
        out[kind] = check_validation(
            {k: sum(m[k] for m in group) / len(group) for k in keys}, kind, unit=unit
        )
    return out


def unit_for(panel: bool) -> str:
    """The guard rail's metric: a panel's mean per-series MASE, else MSE."""
    return "mase" if panel else "mse"
