"""Figures of the production loop: what a forecast run said, and how the
kept forecasts fared against the actuals (monitoring).

Like `plots`: functions return matplotlib figures (Agg backend) and never
save or log."""

import numpy as np
import pandas as pd

from components.evaluation.plots import plt


def forecast_paths(history: dict, rows: pd.DataFrame, target: str, limit: int = 6):
    """The last rows of up to `limit` series and what was forecast after
    them, the widest stored interval shaded.

    Args:
        history: series -> (times, values) of its last observed rows.
        rows: stored forecast rows (series, time or step, `target`, quantiles).
    """
    names = list(dict.fromkeys(rows["series"]))[:limit]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.2 * len(names)), squeeze=False)
    lows = sorted(c for c in rows.columns if c.startswith(f"{target}_q"))
    for ax, name in zip(axes[:, 0], names):
        part = rows[rows["series"] == name]
        x = part["time"] if part["time"].notna().all() else part["step"]
        if name in history:
            times, values = history[name]
            ax.plot(times, values, color="black", linewidth=1.5, label="observed")
        ax.plot(x, part[target], marker="o", markersize=3, label="forecast")
        if len(lows) >= 2 and part[lows[0]].notna().any():
            ax.fill_between(x, part[lows[0]], part[lows[-1]], alpha=0.25,
                            label=f"{lows[0]}..{lows[-1]}")  # fmt: skip
        ax.set(ylabel=target, title=f"{name} ({part['forecaster'].iloc[0]})")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def error_over_time(by_origin: pd.DataFrame, reference: float | None, bound: float | None):
    """MASE of the kept forecasts per origin against seasonal naive's on the
    same rows; the champion's holdout MASE and the retrain bound dashed."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(by_origin))
    ax.plot(x, by_origin["mase"], marker="o", label="forecast")
    ax.plot(x, by_origin["seasonal_naive_mase"], "--", marker=".", label="seasonal naive")
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle=":", label="champion holdout")
    if bound is not None:
        ax.axhline(bound, color="red", linestyle="--", label="retrain above")
    ax.set_xticks(x, by_origin["origin"], rotation=45, ha="right", fontsize=7)
    ax.set(xlabel="forecast origin", ylabel="MASE", title="Error over time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def coverage_over_time(by_origin: pd.DataFrame, levels: list[float], tolerance):
    """Each central interval's coverage per origin, its nominal level and the
    tolerated band around it."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(by_origin))
    for level in levels:
        line = ax.plot(x, by_origin[f"coverage_{level * 100:g}"], marker="o",
                       label=f"{level:.0%} interval")[0]  # fmt: skip
        ax.axhline(level, color=line.get_color(), linestyle=":")
        if tolerance:
            ax.axhspan(level - tolerance, level + tolerance,
                       color=line.get_color(), alpha=0.08)  # fmt: skip
    ax.set_xticks(x, by_origin["origin"], rotation=45, ha="right", fontsize=7)
    ax.set(xlabel="forecast origin", ylabel="share covered", ylim=(0, 1.05),
           title="Interval coverage over time")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def worst_series(by_series: pd.DataFrame, limit: int = 15):
    """The series with the highest MASE over the window, beside seasonal
    naive's on the same rows."""
    rows = by_series.dropna(subset=["mase"]).head(limit)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))
    ax.barh(y + 0.2, rows["mase"], height=0.4, label="forecast")
    ax.barh(y - 0.2, rows["seasonal_naive_mase"], height=0.4, label="seasonal naive")
    ax.set_yticks(y, rows["series"].astype(str), fontsize=8)
    ax.set(xlabel="MASE over the window", title=f"Worst {len(rows)} series")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
