"""What each flow returns: one dataclass per flow, read by attribute.

`to_json()` is what `rnnflow <command> --json` prints. Its keys are a contract
with the scripts that read them: add keys, never rename or remove one.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from components.common.redact import redact_url


def _pick(result, *keys: str) -> dict:
    return {key: getattr(result, key) for key in keys}


@dataclass(frozen=True)
class TrainResult:
    """One finished training run (`train_flow`).

    Attributes:
        metrics: every metric of the run under its flat key (`test_mse`,
            `baseline_persistence_test_mse`; MLflow shows baselines under
            `baseline/<name>/`, see docs/training.md).
        forecaster: the servable `Forecaster` (one series or a panel), in memory.
        evaluation: the test split's `evaluation.Evaluation` (forecasts and
            actual values of every window).
    """

    run_id: str
    experiment: str
    experiment_id: str
    status: str
    tracking_uri: str
    model_uri: str | None
    forecaster_uri: str | None
    parameters: int
    metrics: dict[str, float]
    warnings: list[str]
    forecaster: Any = field(default=None, repr=False)
    evaluation: Any = field(default=None, repr=False)

    def to_json(self) -> dict:
        keys = ("run_id", "experiment", "status", "metrics", "model_uri", "warnings")
        return _pick(self, *keys) | {"tracking_uri": redact_url(self.tracking_uri)}


@dataclass(frozen=True)
class CompareResult:
    """A comparison (`run_compare`): its parent run and the leaderboard, one
    record per model (mean and std over seeds) and baseline, best first by
    `ranked_by`; `warnings`: model kind -> its guard-rail message."""

    parent_run_id: str
    scored_on: str
    ranked_by: str
    experiment: str
    tracking_uri: str
    leaderboard: list[dict]
    warnings: dict[str, str]

    def to_json(self) -> dict:
        keys = ("parent_run_id", "experiment", "scored_on", "leaderboard", "warnings")
        return _pick(self, *keys)


@dataclass(frozen=True)
class RetrainResult:
    """One retraining (`retrain_flow`): the gate's decision and why, the
    registered version (None when nothing was registered) and the champion
    after it."""

    run_id: str | None
    decision: str
    reason: str
    version: str | None
    champion_version: str | None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TuneResult:
    """A search (`tune_flow`): the best trial (number, run_id, value,
    settings), every trial's outcome and the experiment file written."""

    parent_run_id: str
    experiment: str
    tracking_uri: str
    best: dict
    trials: list[dict]
    experiment_file: str

    def to_json(self) -> dict:
        keys = ("parent_run_id", "experiment", "best", "trials", "experiment_file")
        return _pick(self, *keys)
