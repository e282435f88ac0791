"""Champion/challenger: promote a retrained model only when it is really better.

Both models and persistence are scored on the same most recent holdout rows,
which neither model saw in training, in original units (each model has its own
normalizer, so normalized errors are not comparable across them).
"""

from dataclasses import dataclass

import numpy as np

from components.evaluation import regression_metrics
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


def same_windows(a: Backtest, b: Backtest) -> bool:
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
