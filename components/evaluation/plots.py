"""Figures a person looks at first: the loss curve and forecasts against actuals.

Functions return matplotlib figures and never save or log; the caller decides.
Uses the non-interactive Agg backend so it works on servers and in CI.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def loss_curve(history: dict[str, list[float]], best_epoch: int | None = None):
    """Training (and validation) loss per epoch, log scale, best epoch marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("loss", "val_loss"):
        if name in history:
            ax.plot(range(1, len(history[name]) + 1), history[name], label=name)
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle="--", label="best epoch")
    ax.set(xlabel="epoch", ylabel="MSE (normalized)", yscale="log", title="Loss")
    ax.legend()
    fig.tight_layout()
    return fig


def forecast_vs_actual(
    time_index,
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    target: str,
    bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
):
    """One target over the test period: actual values and each forecast (step 1).

    Args:
        time_index: (W,) time of each window's first target step.
        actual: (W,) actual values in original units.
        forecasts: name -> (W,) step-1 forecasts in original units.
        bands: label -> (lower, upper), each (W,): shaded intervals, widest
            first.
    """
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, (label, (lower, upper)) in enumerate((bands or {}).items()):
        ax.fill_between(
            time_index, lower, upper, color="tab:blue", alpha=0.12 + 0.1 * i,
            linewidth=0, label=label,
        )  # fmt: skip
    ax.plot(time_index, actual, color="black", linewidth=2, label="actual")
    for name, values in forecasts.items():
        ax.plot(time_index, values, linewidth=1.2, label=name)
    ax.set(xlabel="time", ylabel=target, title=f"{target}: one-step forecast, test")
    ax.legend()
    fig.tight_layout()
    return fig


def calibration(levels: list[float], coverage: list[float]):
    """Nominal against empirical coverage of the prediction intervals: points
    on the diagonal are calibrated, below it too narrow."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    ax.plot(levels, coverage, marker="o", color="tab:blue", label="test split")
    ax.set(
        xlabel="nominal coverage", ylabel="empirical coverage", xlim=(0, 1),
        ylim=(0, 1), title="Interval calibration",
    )  # fmt: skip
    ax.legend()
    fig.tight_layout()
    return fig


def leaderboard_bars(
    board, metric: str = "test_mse", title: str = "Leaderboard, test split"
):
    """Mean of `metric` per model with std error bars; baselines in grey."""
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = [
        "tab:grey" if kind == "baseline" else "tab:blue" for kind in board["kind"]
    ]
    ax.bar(
        board["model"],
        board[f"{metric}_mean"],
        yerr=board[f"{metric}_std"],
        color=colors,
        capsize=4,
    )
    ax.set(ylabel=f"{metric} (mean ± std over seeds)", title=title)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def error_by_lead_time(curves: dict[str, list[float]]):
    """MAE at each horizon step, one line per model; baselines dashed."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in curves.items():
        style = "--" if name in ("persistence", "linear", "seasonal_naive") else "-"
        ax.plot(range(1, len(values) + 1), values, style, marker="o", label=name)
    ax.set(
        xlabel="lead time (steps ahead)",
        ylabel="test MAE (normalized)",
        title="Error by lead time",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def backtest_folds(table, metric: str = "test_mse"):
    """`metric` per backtest fold for the model and each baseline, by the
    first row of the fold's test block."""
    fig, ax = plt.subplots(figsize=(7, 4))
    columns = {"model": metric}
    for name in ("persistence", "linear", "seasonal_naive"):
        if f"baseline_{name}_{metric}" in table:
            columns[name] = f"baseline_{name}_{metric}"
    for name, column in columns.items():
        style = "-" if name == "model" else "--"
        ax.plot(table["test_start"], table[column], style, marker="o", label=name)
    ax.set(
        xlabel="first test row of the fold",
        ylabel=f"{metric} (normalized)",
        title=f"Backtest, {len(table)} folds",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def close(fig) -> None:
    """Free a figure's memory once it has been saved."""
    plt.close(fig)


def panel_examples(report, picks: dict[str, int], target: str, k: int = 0, forecasts=None):
    """A few series of a panel over the test period (step-1 forecasts), one
    panel each, e.g. the best, median and worst series by skill.

    Args:
        report: an `evaluation.Evaluation` of a panel (it has `window_series`).
        picks: label -> series index.
        forecasts: name -> (W, T, K) to draw; default `report.forecasts`.
    """
    fig, axes = plt.subplots(len(picks), 1, figsize=(9, 2.6 * len(picks)), squeeze=False)
    times = np.asarray(report.time_index, dtype=object)
    for ax, (label, j) in zip(axes[:, 0], picks.items()):
        rows = report.window_series == j
        ax.plot(times[rows], report.actual[rows, 0, k], color="black", linewidth=2,
                label="actual")  # fmt: skip
        for name, values in (forecasts or report.forecasts).items():
            ax.plot(times[rows], values[rows, 0, k], linewidth=1.2, label=name)
        ax.set(ylabel=target, title=f"{label}: series {report.series[j]}")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def skill_distribution(table):
    """Per-series skill against persistence (1 - MAE / persistence MAE) of
    each forecast: a histogram each; right of 0 beats persistence."""
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = table[table["model"] != "persistence"]
    finite = rows["skill"].replace([np.inf, -np.inf], np.nan).dropna()
    low, high = np.percentile(finite, [1, 99]) if len(finite) else (-1, 1)
    bins = np.linspace(min(low, -0.1), max(high, 0.1), 30)
    for name, part in rows.groupby("model", sort=False):
        ax.hist(part["skill"].clip(bins[0], bins[-1]), bins=bins, alpha=0.5, label=name)
    ax.axvline(0, color="black", linewidth=1)
    ax.set(xlabel="skill vs persistence (per series)", ylabel="series",
           title="Per-series skill, test")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    return fig


def pick_series(table, model: str = "model") -> dict[str, int]:
    """Best, median and worst series of `model` by skill (indices into the
    panel's series): the three a reader looks at first."""
    rows = table[table["model"] == model].dropna(subset=["skill"])
    if rows.empty:
        return {}
    ordered = rows.sort_values("skill", ascending=False)["series_index"].to_numpy()
    return {
        "best": int(ordered[0]),
        "median": int(ordered[len(ordered) // 2]),
        "worst": int(ordered[-1]),
    }
