"""What each flow returns: one dataclass per flow, read by attribute.

`to_json()` is what `rnnflow <command> --json` prints. Its keys are a contract
with the scripts that read them: add keys, never rename or remove one.
"""

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from components.common.redact import redact_url
from components.evaluation.metrics import BASELINE_LABELS


def _pick(result, *keys: str) -> dict:
    return {key: getattr(result, key) for key in keys}


def _spread(row: dict, metric: str) -> str:
    """`mean ± std` over a leaderboard row's runs; the mean alone for one run
    or a reference (no spread to show)."""
    mean = f"{row[f'{metric}_mean']:.4f}"
    return f"{mean} ± {row[f'{metric}_std']:.4f}" if row["runs"] > 1 else mean


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

    def to_text(self) -> str:
        """What `rnnflow train` prints: the model beside its references."""
        from components.tracking.runs import ui_link

        metrics = self.metrics
        rows = [("model", "test_")]
        for name, label in BASELINE_LABELS.items():
            if f"baseline_{name}_test_mse" in metrics:
                rows.append((label, f"baseline_{name}_test_"))
        lines = [
            f"run {self.run_id} ({self.status}) in experiment "
            f"{self.experiment!r}",
            f"{'':<12}{'mse':>10}{'mae':>10}{'mse_raw':>12}{'mae_raw':>12}{'mase':>8}"
            f"{'smape':>8}",
        ]
        for label, prefix in rows:
            values = [metrics[f"{prefix}{m}"] for m in ("mse", "mae", "mse_raw", "mae_raw")]
            lines.append(
                f"{label:<12}{values[0]:>10.4f}{values[1]:>10.4f}"
                f"{values[2]:>12.4f}{values[3]:>12.4f}"
                f"{metrics.get(f'{prefix}mase', float('nan')):>8.3f}"
                f"{metrics.get(f'{prefix}smape', float('nan')):>8.2f}"
            )
        if "test_series_beating_persistence" in metrics:
            linear = metrics.get("baseline_linear_test_series_beating_persistence")
            lines.append(
                "panel: the model beats persistence on "
                f"{metrics['test_series_beating_persistence']:.0%} of the series"
                + (f", the linear AR on {linear:.0%}" if linear is not None else "")
                + " (MAE per series; all in series_metrics.parquet)"
            )
        if "backtest_test_mse_mean" in metrics:
            folds = [
                f"{label} {metrics[f'backtest_{prefix}mse_mean']:.4f} "
                f"± {metrics[f'backtest_{prefix}mse_std']:.4f}"
                for label, prefix in rows
            ]
            lines.append(
                f"backtest, {int(metrics['backtest_folds'])} folds, mse: "
                + ", ".join(folds)
            )
        members = sorted(
            k for k in metrics if k.startswith("member_") and k.endswith("_test_mse")
        )
        if members:
            scores = ", ".join(f"{metrics[k]:.4f}" for k in members)
            lines.append(f"ensemble of {len(members)}: the members' test mse {scores}")
        if "refit_epochs" in metrics:
            lines.append(
                f"served: the network refit on every row for "
                f"{int(metrics['refit_epochs'])} epochs (the scores above are "
                "the model before the refit)"
            )
        lines.append(
            f"trained {metrics['epochs_trained']} epochs in "
            f"{metrics['train_seconds']:.1f} s. See it: rnnflow ui, then "
            + ui_link("http://127.0.0.1:5000", self.experiment_id)
        )
        lines += [f"! {warning}" for warning in self.warnings]
        return "\n".join(lines)


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
    experiment_id: str = ""

    def to_json(self) -> dict:
        keys = ("parent_run_id", "experiment", "scored_on", "leaderboard", "warnings")
        return _pick(self, *keys)

    def to_text(self) -> str:
        """What `rnnflow compare` prints: the leaderboard, best first."""
        rows = self.leaderboard
        ranked = self.ranked_by
        best = next(r["model"] for r in rows if r["kind"] == "model")
        lines = [
            (
                f"parent run {self.parent_run_id} in experiment "
                f"{self.experiment!r}, scored on the {self.scored_on}, "
                f"ranked by {ranked}"
            ),
            f"   {'model':<16}{'runs':>5}{'test_mse':>20}{'test_mse_raw':>22}{'skill':>9}"
            + (f"{ranked:>20}" if ranked != "test_mse" else ""),
        ]
        for r in rows:
            mark = "*" if r["model"] == best else " "
            extra = _spread(r, ranked) if ranked != "test_mse" else ""
            lines.append(
                f" {mark} {r['model']:<16}{r['runs']:>5}{_spread(r, 'test_mse'):>20}"
                f"{_spread(r, 'test_mse_raw'):>22}"
                f"{r['skill_vs_persistence']:>+9.1%}{extra:>20}".rstrip()
            )
        from components.tracking.runs import ui_link

        lines.append(
            f"* best network: {best}. skill = 1 - mse / persistence mse. Compare the "
            "runs: rnnflow ui, then "
            + ui_link("http://127.0.0.1:5000", self.experiment_id, charts=True)
        )
        lines += [f"! {warning}" for warning in self.warnings.values()]
        return "\n".join(lines)


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

    def to_text(self) -> str:
        """What `rnnflow retrain` prints after the flow's own decision line:
        what was registered and which version serves now."""
        run = f"run {self.run_id}" if self.run_id else "no run"
        champion = f"v{self.champion_version}" if self.champion_version else "none"
        if self.version is None:
            return f"nothing registered; champion {champion}; {run}"
        if self.version == self.champion_version:
            return f"registered v{self.version}, now the champion; {run}"
        return f"registered v{self.version}; champion stays {champion}; {run}"


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


@dataclass(frozen=True)
class ForecastResult:
    """What `rnnflow forecast` returns: the run, the origin, the model and
    the stored rows."""

    run_id: str
    experiment: str
    origin: str
    model_uri: str
    model_version: str | None
    store: str
    metrics: dict[str, float] = field(default_factory=dict)
    forecast: Any = None  # pandas.DataFrame, the stored rows

    def to_json(self) -> dict:
        keys = ("run_id", "experiment", "origin", "model_uri", "model_version", "store")
        out = _pick(self, *keys) | {"metrics": self.metrics}
        out["forecast"] = json.loads(
            self.forecast.to_json(orient="records", date_format="iso")
        )
        return out

    def to_text(self) -> str:
        """What `rnnflow forecast` prints: the origin, who forecast what,
        where it is kept, then the rows."""
        version = f" (version {self.model_version})" if self.model_version else ""
        made = ", ".join(
            f"{int(v)} by {k.removeprefix('series_by_')}"
            for k, v in self.metrics.items()
            if k.startswith("series_by_")
        )
        shown = self.forecast.drop(columns=["model_uri", "model_version", "run_id"])
        return "\n".join([
            f"forecast at origin {self.origin} with {self.model_uri}{version}: "
            f"{int(self.metrics['series'])} series ({made}), {len(self.forecast)} rows",
            f"stored in {self.store} (origin={self.origin}); run {self.run_id}",
            shown.to_string(index=False, max_rows=40),
        ])  # fmt: skip


@dataclass(frozen=True)
class MonitorResult:
    """What `rnnflow monitor` returns: the window's figures, the decision and
    what it started (a Prefect flow run or a retrain), the worst series."""

    run_id: str
    experiment: str
    origins: list[str]
    reference_mase: float | None
    metrics: dict[str, float]
    retrain: bool
    reasons: list[str]
    started: str | None = None  # what the decision started, in words
    worst: Any = None  # pandas.DataFrame: per series, worst MASE first
    model: str = ""  # the serving model whose forecasts were judged
    other_rows: int = 0  # kept rows of earlier models, left out

    def to_json(self) -> dict:
        keys = ("run_id", "experiment", "origins", "reference_mase", "metrics",
                "retrain", "reasons", "started", "model", "other_rows")  # fmt: skip
        out = _pick(self, *keys)
        out["worst_series"] = json.loads(self.worst.head(10).to_json(orient="records"))
        return out

    def to_text(self) -> str:
        """What `rnnflow monitor` prints: the window, the figures against
        their references, the decision, the worst series."""
        m = self.metrics
        judged = f"forecasts of {self.model}" + (
            f" ({self.other_rows} rows of earlier models left out)"
            if self.other_rows else ""
        )  # fmt: skip
        if not m.get("monitor_rows"):
            return "\n".join([
                f"monitor: none of the {judged} has an actual yet; nothing to judge",
                f"run {self.run_id}",
            ])  # fmt: skip
        window = (f"{self.origins[0]} .. {self.origins[-1]}" if len(self.origins) > 1
                  else self.origins[0])  # fmt: skip
        reference = (f", champion holdout {self.reference_mase:.3f}"
                     if self.reference_mase is not None else "")  # fmt: skip
        lines = [
            f"monitor over {len(self.origins)} origin(s) ({window}): "
            f"{int(m['monitor_rows'])} forecasts of {int(m['monitor_series'])} "
            f"series with actuals, {judged}",
            f"  MASE {m['monitor_mase']:.3f} (seasonal naive "
            f"{m['monitor_seasonal_naive_mase']:.3f}{reference}), "
            f"MAE {m['monitor_mae']:.4g}",
        ]
        coverage = [(k.removeprefix("monitor_coverage_"), v) for k, v in m.items()
                    if k.startswith("monitor_coverage_") and not math.isnan(v)]  # fmt: skip
        if coverage:
            lines.append("  coverage " + ", ".join(
                f"{level} % interval {value:.0%}" for level, value in coverage
            ))  # fmt: skip
        decision = "retrain: " if self.retrain else "no retrain: "
        lines.append(decision + "; ".join(self.reasons))
        if self.started:
            lines.append(self.started)
        worst = self.worst.dropna(subset=["mase"]).head(3)
        if len(worst) > 1:
            lines.append("  worst series: " + ", ".join(
                f"{s} {v:.2f}" for s, v in zip(worst["series"], worst["mase"])
            ))  # fmt: skip
        lines.append(f"run {self.run_id}")
        return "\n".join(lines)
