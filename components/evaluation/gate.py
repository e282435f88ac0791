"""Champion/challenger: promote a retrained model only when it is really better.

Both models and persistence are scored on the same most recent holdout rows,
which neither model saw in training, in original units (each model has its own
normalizer, so normalized errors are not comparable across them).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.evaluation.evaluate import regression_metrics, require_finite
from components.evaluation.holdout import Holdout
from components.evaluation.intervals import (
    bands,
    central_pairs,
    level_name,
    quantile_metrics,
)

PROMOTED, REJECTED, SKIPPED = "promoted", "rejected", "skipped"


@dataclass(frozen=True)
class Decision:
    """What the gate decided and why, in words a person reads in the registry."""

    decision: str  # promoted | rejected | skipped
    reason: str

    @property
    def promote(self) -> bool:
        return self.decision == PROMOTED


def holdout_mse(holdout: Holdout) -> dict[str, float]:
    """MSE in original units of the network and of persistence on the holdout."""
    return {
        "model": regression_metrics(holdout.actual, holdout.forecast)["mse"],
        "persistence": regression_metrics(holdout.actual, holdout.persistence)["mse"],
    }


def judge(
    challenger: Holdout,
    champion: Holdout | str | None,
    min_improvement: float = 0.0,
    champion_version: str | None = None,
    unit: str = "raw",
    metric: str = "mse",
) -> tuple[Decision, dict[str, float]]:
    """Decide on holdouts; return the decision and the holdout metrics.

    Args:
        unit: what the holdouts' values are in, for the metric names
            (`holdout_mse_raw`; a panel's are `scaled` by each series' scale).
        metric: what challenger and champion are compared on (`retrain.metric`):
            `mse`, or `wql` / `interval_score` of the quantiles both serve.
            The challenger must beat persistence on MSE in every case.
        champion: the champion's holdout on the same rows; None when there is
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
    if metric != "mse":
        return _judge_quantiles(
            challenger, champion, scores, metrics, min_improvement,
            champion_version, unit, metric,
        )  # fmt: skip
    theirs = None
    if champion is not None:
        theirs = holdout_mse(champion)["model"]
        metrics[f"champion_holdout_mse_{unit}"] = theirs
    decision = decide(
        scores["model"], scores["persistence"], theirs, min_improvement,
        champion_version,
    )  # fmt: skip
    return decision, metrics


def _judge_quantiles(
    challenger, champion, scores, metrics, min_improvement, champion_version, unit,
    metric,
):
    """`judge` on `wql` or `interval_score`: beat persistence on MSE first,
    then the champion on `metric` over the quantile levels both serve."""
    against_persistence = decide(scores["model"], scores["persistence"], None)
    if not against_persistence.promote:
        return against_persistence, metrics
    served = set(challenger.quantiles)
    if champion is not None:
        served &= set(champion.quantiles)
    levels = sorted(served)
    ours = quantile_score(challenger, metric, levels)
    theirs = None if champion is None else quantile_score(champion, metric, levels)
    if ours is None or (champion is not None and theirs is None):
        kind = "central pairs" if metric == "interval_score" else "levels"
        theirs_text = (
            "" if champion is None
            else f", champion v{champion_version} {sorted(champion.quantiles)}"
        )  # fmt: skip
        return Decision(
            REJECTED,
            f"retrain.metric={metric} needs quantile {kind} that the models "
            f"serve; challenger {sorted(challenger.quantiles)}{theirs_text}",
        ), metrics
    metrics[f"holdout_{metric}_{unit}"] = ours
    if theirs is not None:
        metrics[f"champion_holdout_{metric}_{unit}"] = theirs
    decision = decide(ours, None, theirs, min_improvement, champion_version, metric)
    return Decision(
        decision.decision,
        f"{decision.reason}; holdout mse {scores['model']:.6g} beats persistence "
        f"{scores['persistence']:.6g}",
    ), metrics


def quantile_score(holdout: Holdout, metric: str, levels: list[float]):
    """`wql` over `levels` of the holdout's quantiles, or the mean interval
    score of their central pairs; None when there is nothing to score."""
    if not levels or (metric == "interval_score" and not central_pairs(levels)):
        return None
    stacked = np.stack([holdout.quantiles[q] for q in levels], axis=-1)
    found = quantile_metrics(holdout.actual, stacked, levels, prefix="")
    if metric == "wql":
        return found["wql"]
    return float(np.mean([
        found[f"interval_score_{level_name(level)}_raw"]
        for level, _, _ in central_pairs(levels)
    ]))  # fmt: skip


def holdout_coverage(
    holdout: Holdout, max_error: float | None
) -> tuple[dict[str, float], str | None]:
    """Coverage of the challenger's served intervals (the central pairs of
    `holdout.quantiles`) on the holdout, as metrics `holdout_coverage_<L>`,
    and the reason to refuse it when a level misses by more than `max_error`
    (None: no gate, or every level within it)."""
    metrics, misses = {}, []
    for level, (lower, upper) in sorted(bands(holdout.quantiles).items()):
        inside = (holdout.actual >= lower) & (holdout.actual <= upper)
        coverage = float(inside.mean())
        metrics[f"holdout_coverage_{level_name(level)}"] = coverage
        if max_error is not None and abs(coverage - level) > max_error:
            misses.append(
                f"the {level_name(level)} % interval covers {coverage:.0%} of the "
                f"holdout"
            )
    if not misses:
        return metrics, None
    return metrics, (
        f"{'; '.join(misses)}: off by more than `retrain.max_coverage_error` "
        f"{max_error:g}"
    )


def series_record(challenger: Holdout, champion: Holdout) -> dict[str, float]:
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


def _same_windows(a: Holdout, b: Holdout) -> bool:
    """True when two holdouts forecast the same target rows and shapes."""
    return a.actual.shape == b.actual.shape and bool(np.all(a.index == b.index))


def decide(
    challenger: float,
    persistence: float,
    champion: float | None,
    min_improvement: float = 0.0,
    champion_version: str | None = None,
    metric: str = "mse",
) -> Decision:
    """Promote when the challenger beats persistence and, if there is a champion,
    beats it by at least `min_improvement` (relative: 0.05 means 5 % lower).

    Args:
        challenger, persistence, champion: holdout `metric` (lower is
            better) in original units; `persistence` None: not compared.
    """
    if persistence is not None and not challenger < persistence:
        return Decision(
            REJECTED,
            f"challenger holdout {metric} {challenger:.6g} does not beat "
            f"persistence {persistence:.6g}",
        )
    beats = "" if persistence is None else f" beats persistence {persistence:.6g}"
    if champion is None:
        return Decision(
            PROMOTED, f"first champion: holdout {metric} {challenger:.6g}{beats}"
        )
    bar = champion * (1.0 - min_improvement)
    who = f"champion v{champion_version}" if champion_version else "champion"
    if challenger < bar:
        also = "" if persistence is None else f" and persistence {persistence:.6g}"
        return Decision(
            PROMOTED,
            f"holdout {metric} {challenger:.6g} beats {who} {champion:.6g} "
            f"(needed < {bar:.6g}){also}",
        )
    return Decision(
        REJECTED,
        f"holdout {metric} {challenger:.6g} does not beat {who} {champion:.6g} "
        f"by retrain.min_improvement={min_improvement:g} (needed < {bar:.6g})",
    )
