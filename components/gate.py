"""Champion/challenger: promote a retrained model only when it is really better.

Both models and persistence are scored on the same most recent holdout rows,
which neither model saw in training, in original units (each model has its own
normalizer, so normalized errors are not comparable across them).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.evaluation import regression_metrics, require_finite
from components.forecaster import Backtest

PROMOTED, REJECTED, SKIPPED = "promoted", "rejected", "skipped"


@dataclass(frozen=True)
class Decision:
    """What the gate decided and why, in words a person reads in the registry."""

    decision: str  # promoted | rejected | skipped
    reason: str

    @property
    def promote(self) -> bool:
        return self.decision == PROMOTED


def holdout_mse(backtest: Backtest) -> dict[str, float]:
    """MSE in original units of the network and of persistence on the holdout."""
    return {
        "model": regression_metrics(backtest.actual, backtest.forecast)["mse"],
        "persistence": regression_metrics(backtest.actual, backtest.persistence)["mse"],
    }


def judge(
    challenger: Backtest,
    champion: Backtest | str | None,
    min_improvement: float = 0.0,
    champion_version: str | None = None,
    unit: str = "raw",
) -> tuple[Decision, dict[str, float]]:
    """Decide on holdout backtests; return the decision and the holdout metrics.

    Args:
        unit: what the backtests' values are in, for the metric names
            (`holdout_mse_raw`; a panel's are `scaled` by each series' scale).
        champion: the champion's backtest on the same rows; None when there is
            no champion; a string when it could not be scored (the reason).

    Raises:
        TrainingError: the challenger's holdout forecasts are not finite: it
            failed, and a failed challenger is never registered. (A champion
            with non-finite forecasts cannot score the new data: rejected.)
    """
    since = challenger.index[0]
    require_finite(challenger.forecast, f"the challenger on the holdout from {since}")
    if champion is not None and not isinstance(champion, str):
        bad = int(np.sum(~np.isfinite(champion.forecast)))
        if bad:
            champion = f"{bad} of its {champion.forecast.size} forecasts are not finite"
    scores = holdout_mse(challenger)
    metrics = {
        f"holdout_mse_{unit}": scores["model"],
        f"persistence_holdout_mse_{unit}": scores["persistence"],
    }
    who = f"champion v{champion_version}"
    if isinstance(champion, str):
        return Decision(
            REJECTED, f"{who} cannot score the new data: {champion}"
        ), metrics
    if champion is not None and not _same_windows(challenger, champion):
        reason = (
            f"{who} forecasts other steps or targets {champion.actual.shape} than "
            f"the challenger {challenger.actual.shape}; compare them by hand and "
            "move the alias yourself"
        )
        return Decision(REJECTED, reason), metrics
    theirs = None
    if champion is not None:
        theirs = holdout_mse(champion)["model"]
        metrics[f"champion_holdout_mse_{unit}"] = theirs
    decision = decide(
        scores["model"], scores["persistence"], theirs, min_improvement,
        champion_version,
    )  # fmt: skip
    return decision, metrics


def holdout_coverage(
    backtest: Backtest, radii: dict, max_error: float | None
) -> tuple[dict[str, float], str | None]:
    """Coverage of the challenger's calibrated intervals (level -> (T, K)
    radius, in the backtest's units) on the holdout, as metrics
    `holdout_coverage_<L>`, and the reason to refuse it when a level misses
    by more than `max_error` (None: no gate, or every level within it)."""
    metrics, misses = {}, []
    for level, radius in sorted(radii.items()):
        radius = np.asarray(radius, np.float64)[None]  # (1, T, K)
        inside = np.abs(backtest.actual - backtest.forecast) <= radius
        coverage = float(inside.mean())
        metrics[f"holdout_coverage_{100 * float(level):g}"] = coverage
        if max_error is not None and abs(coverage - float(level)) > max_error:
            misses.append(
                f"the {100 * float(level):g} % interval covers {coverage:.0%} of the "
                f"holdout"
            )
    if not misses:
        return metrics, None
    return metrics, (
        f"{'; '.join(misses)}: off by more than `retrain.max_coverage_error` "
        f"{max_error:g}"
    )


def series_record(challenger: Backtest, champion: Backtest) -> dict[str, float]:
    """A panel holdout (index `series@time`) per series: on how many series
    the challenger's mean absolute error is below, and above, the champion's."""
    series = [label.rsplit("@", 1)[0] for label in challenger.index]
    errors = {}
    for name, test in (("challenger", challenger), ("champion", champion)):
        mae = np.abs(test.forecast - test.actual).mean(axis=(1, 2))
        errors[name] = pd.Series(mae).groupby(series).mean()
    won = errors["challenger"] < errors["champion"]
    lost = errors["challenger"] > errors["champion"]
    return {"holdout_series_won": float(won.sum()), "holdout_series_lost": float(lost.sum())}


def _same_windows(a: Backtest, b: Backtest) -> bool:
    """True when two backtests forecast the same target rows and shapes."""
    return a.actual.shape == b.actual.shape and bool(np.all(a.index == b.index))


def decide(
    challenger: float,
    persistence: float,
    champion: float | None,
    min_improvement: float = 0.0,
    champion_version: str | None = None,
) -> Decision:
    """Promote when the challenger beats persistence and, if there is a champion,
    beats it by at least `min_improvement` (relative: 0.05 means 5 % lower MSE).

    Args:
        challenger, persistence, champion: holdout MSE in original units.
    """
    if not challenger < persistence:
        return Decision(
            REJECTED,
            f"challenger holdout mse {challenger:.6g} does not beat persistence "
            f"{persistence:.6g}",
        )
    if champion is None:
        return Decision(
            PROMOTED,
            f"first champion: holdout mse {challenger:.6g} beats persistence "
            f"{persistence:.6g}",
        )
    bar = champion * (1.0 - min_improvement)
    who = f"champion v{champion_version}" if champion_version else "champion"
    if challenger < bar:
        return Decision(
            PROMOTED,
            f"holdout mse {challenger:.6g} beats {who} {champion:.6g} "
            f"(needed < {bar:.6g}) and persistence {persistence:.6g}",
        )
    return Decision(
        REJECTED,
        f"holdout mse {challenger:.6g} does not beat {who} {champion:.6g} "
        f"by retrain.min_improvement={min_improvement:g} (needed < {bar:.6g})",
    )
