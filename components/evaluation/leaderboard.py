"""Put trained models and baselines side by side: one row per model, mean and
spread over seeds, sorted by the main metric. Backtested runs are ranked by
their fold averages (`backtest_<metric>_mean`), others by the test split.

Baselines are rows like any model. They are scored on the same test windows by
every child, so their numbers are identical across children (std 0).
"""

import math
import re
import statistics

import pandas as pd

from components.evaluation.metrics import BASELINES

METRICS = (
    "test_mse",
    "test_mae",
    "test_rmse",
    "test_mse_raw",
    "test_mae_raw",
    "test_rmse_raw",
    "test_mase",
    "test_smape",
    "test_nd",
)


def build_leaderboard(children: list[dict], sort_by: str = "test_mse") -> pd.DataFrame:
    """Aggregate finished child runs into a sorted leaderboard.

    Args:
        children: one dict per run: `model`, `run_id`, `metrics` (as logged),
            and optionally `parameters`.

    Returns:
        one row per model and baseline with `runs`, `<metric>_mean`,
        `<metric>_std` for each of METRICS, `skill_vs_persistence`
        (1 - mse / persistence mse; > 0 beats persistence), `train_seconds_mean`,
        `parameters`; best first.
    """
    if not children:
        raise ValueError("Received no finished runs to rank.")
    rows = [_model_row(model, runs) for model, runs in _by_model(children).items()]
    rows += [
        _baseline_row(name, children[0]["metrics"])
        for name in baselines_in(children[0]["metrics"])
    ]
    board = pd.DataFrame(rows)
    persistence = board.loc[board["model"] == "persistence", "test_mse_mean"].iloc[0]
    board["skill_vs_persistence"] = 1 - board["test_mse_mean"] / persistence
    board = board.sort_values(f"{sort_by}_mean", kind="stable").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    board.attrs["sort_by"] = sort_by
    return board


def to_markdown(board: pd.DataFrame) -> str:
    """A readable table: mean ± std for the main metrics, in both units."""
    header = [
        "rank",
        "model",
        "runs",
        "test_mse",
        "test_mae",
        "test_mse_raw",
        "test_mae_raw",
        "test_mase",
        "skill vs persistence",
        "train s",
        "params",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in board.itertuples(index=False):
        cells = [str(row.rank), row.model, str(row.runs)]
        for metric in ("test_mse", "test_mae", "test_mse_raw", "test_mae_raw", "test_mase"):
            cells.append(
                _mean_std(getattr(row, f"{metric}_mean"), getattr(row, f"{metric}_std"))
            )
        cells.append(f"{row.skill_vs_persistence:+.1%}")
        cells.append(
            "" if _missing(row.train_seconds_mean) else f"{row.train_seconds_mean:.1f}"
        )
        cells.append("" if _missing(row.parameters) else f"{int(row.parameters):,}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def lead_time_errors(children: list[dict]) -> dict[str, list[float]]:
    """Mean MAE per lead time for each model (over seeds) and baseline.

    Returns {} for single-step runs, which log no per-step metrics.
    """
    metrics = children[0]["metrics"]
    steps = sorted(
        int(k.rsplit("_h", 1)[1]) for k in metrics if k.startswith("test_mae_h")
    )
    if not steps:
        return {}
    curves = {
        model: [
            statistics.fmean(r["metrics"][f"test_mae_h{h}"] for r in runs)
            for h in steps
        ]
        for model, runs in _by_model(children).items()
    }
    for name in baselines_in(metrics):
        curves[name] = [metrics[f"baseline_{name}_test_mae_h{h}"] for h in steps]
    return curves


def baselines_in(metrics: dict[str, float]) -> list[str]:
    """The baselines a run was scored against, in BASELINES order."""
    return [b for b in BASELINES if f"baseline_{b}_test_mse" in metrics]


def winner(board: pd.DataFrame) -> str:
    """The best network (baselines excluded); the board is sorted already."""
    return board.loc[~board["model"].isin(BASELINES), "model"].iloc[0]


def per_model_metrics(board: pd.DataFrame) -> dict[str, float]:
    """Every leaderboard number as a metric of the compare parent:
    `gru/test_mse_mean`, ... (a baseline's `baseline_persistence_test_mse_mean`,
    which MLflow shows as `baseline/persistence/test_mse_mean`), so the parent
    alone compares the models in the MLflow UI. Missing (NaN) values are left
    out."""
    out = {}
    columns = [c for c in board.columns if c.endswith(("_mean", "_std"))]
    for _, row in board.iterrows():
        model = row["model"]
        prefix = f"{model}/" if row["kind"] == "model" else f"baseline_{model}_"
        out.update(
            {f"{prefix}{c}": float(row[c]) for c in columns if not _missing(row[c])}
        )
    return out


def _by_model(children: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for child in children:
        grouped.setdefault(child["model"], []).append(child)
    return grouped


def interval_metrics_in(metrics: dict[str, float]) -> list[str]:
    """The run's uncertainty scores on the test split (coverage, width,
    interval score per level, and a quantile model's wQL and mean pinball
    loss; not the per-lead ones), for leaderboard columns."""
    return sorted(m for m in metrics if _INTERVAL_METRIC.match(m))


_INTERVAL_METRIC = re.compile(
    r"^test_((coverage|width|interval_score)_[\d.]+(_raw)?|wql|pinball_raw)$"
)


def _model_row(model: str, runs: list[dict]) -> dict:
    row = {
        "model": model,
        "kind": "model",
        "runs": len(runs),
        "run_ids": [r["run_id"] for r in runs],
    }
    for metric in [*METRICS, *interval_metrics_in(runs[0]["metrics"])]:
        row.update(_stats(metric, [score(r["metrics"], metric) for r in runs]))
    row["train_seconds_mean"] = statistics.fmean(
        r["metrics"].get("train_seconds", math.nan) for r in runs
    )
    row["parameters"] = runs[0].get("parameters", math.nan)
    return row


def _baseline_row(name: str, metrics: dict[str, float]) -> dict:
    row = {"model": name, "kind": "baseline", "runs": 0, "run_ids": []}
    for metric in METRICS:
        row.update(_stats(metric, [score(metrics, f"baseline_{name}_{metric}")]))
    row.update(train_seconds_mean=math.nan, parameters=math.nan)
    return row


def score(metrics: dict[str, float], metric: str) -> float:
    """A run's number for `metric`: the mean over backtest folds when the run
    was backtested, else its value on the test split; NaN when the run did not
    report it (`test_mase` is newer than some runs)."""
    return metrics.get(f"backtest_{metric}_mean", metrics.get(metric, math.nan))


def scored_on(children: list[dict]) -> str:
    """What the leaderboard's numbers average: backtest folds or the test split."""
    return "backtest" if "backtest_test_mse_mean" in children[0]["metrics"] else "test"


def _stats(metric: str, values: list[float]) -> dict[str, float]:
    # pandas' std skips NaN (a metric some runs lack); statistics' fails on it
    spread = float(pd.Series(values, dtype=float).std()) if len(values) > 1 else 0.0
    return {f"{metric}_mean": statistics.fmean(values), f"{metric}_std": spread}


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}" if std else f"{mean:.4f}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
