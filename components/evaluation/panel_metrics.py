"""Per-series scores of a panel: one row per series and model, and the
aggregates a forecaster reads across series (mean MASE, share of series
where the model beats persistence).

Errors are in original units; MASE divides each series' error by that
series' in-sample naive error, so series of any scale count alike.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.evaluation.metrics import mase_scale, smape_terms


def series_scale(
    train_levels: np.ndarray, bounds: np.ndarray, season: int | None = None
) -> np.ndarray:
    """(S, K): each series' mean absolute (seasonal) naive error on its
    training rows, the MASE denominator; NaN where that error is zero."""
    return np.stack(
        [
            mase_scale(train_levels[a:b], season)
            for a, b in zip(bounds[:-1], bounds[1:])
        ]
    )


def filled(scale: np.ndarray) -> np.ndarray:
    """`scale` (S, K) with each NaN (a series constant in training) replaced
    by the median scale of its target, for dividing by."""
    median = np.nanmedian(np.where(np.isfinite(scale), scale, np.nan), axis=0)
    median = np.where(np.isfinite(median) & (median > 0), median, 1.0)
    return np.where(np.isfinite(scale) & (scale > 0), scale, median)


def series_table(
    ids: tuple[str, ...],
    window_series: np.ndarray,
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    scale: np.ndarray,
) -> pd.DataFrame:
    """One row per series (with windows) and forecast: windows, mae, mse,
    mase, smape, nd (original units), and skill (1 - mae / persistence's mae;
    above 0 beats persistence on that series).

    Args:
        window_series: (W,) series index of each window; actual and each
            forecast are (W, T, K); scale: (S, K) from `series_scale`.
    """
    actual = np.asarray(actual, np.float64)
    present = np.unique(window_series)
    frames = []
    for name, forecast in forecasts.items():
        error = np.abs(np.asarray(forecast, np.float64) - actual)  # (W, T, K)
        per_window = pd.DataFrame(
            {
                "mae": error.mean(axis=(1, 2)),
                "mse": (error**2).mean(axis=(1, 2)),
                "smape": smape_terms(actual, forecast).mean(axis=(1, 2)),
                "abs_error": error.sum(axis=(1, 2)),
                "abs_actual": np.abs(actual).sum(axis=(1, 2)),
            }
        )
        mae_k = pd.DataFrame(error.mean(axis=1)).groupby(window_series).mean()
        grouped = per_window.groupby(window_series)
        frame = grouped[["mae", "mse", "smape"]].mean()
        frame.insert(0, "windows", grouped.size())
        frame["mase"] = np.nanmean(mae_k.to_numpy() / scale[present], axis=1)
        sums = grouped[["abs_error", "abs_actual"]].sum()
        frame["nd"] = sums["abs_error"] / sums["abs_actual"].where(sums["abs_actual"] > 0)
        frame.insert(0, "model", name)
        frame.insert(0, "series_index", present)
        frame.insert(0, "series", [ids[j] for j in present])
        frames.append(frame.reset_index(drop=True))
    table = pd.concat(frames, ignore_index=True)
    if "persistence" in forecasts:
        naive = table[table["model"] == "persistence"].set_index("series")["mae"]
        reference = table["series"].map(naive)
        table["skill"] = 1 - table["mae"] / reference.where(reference > 0)
    return table


def aggregate(table: pd.DataFrame, prefix_of) -> dict[str, float]:
    """Across series, per forecast: `{prefix}mase` (mean of the series' MASE)
    and `{prefix}series_beating_persistence` (share of series with skill > 0);
    `prefix_of(name)` gives each forecast's metric prefix."""
    out = {}
    for name, rows in table.groupby("model", sort=False):
        prefix = prefix_of(name)
        out[f"{prefix}mase"] = float(np.nanmean(rows["mase"]))
        if "skill" in rows and name != "persistence":
            out[f"{prefix}series_beating_persistence"] = float(
                np.mean(rows["skill"] > 0)
            )
    return out


@dataclass(frozen=True)
class Paired:
    """`first` against `second` on the same series: the mean of their
    per-series differences (`first - second`, negative: `first` lower), its
    standard error and the number of series compared."""

    mean: float
    stderr: float
    series: int

    @property
    def z(self) -> float:
        """Mean difference in standard errors (0 when nothing varies)."""
        return self.mean / self.stderr if self.stderr > 0 else 0.0


def paired(table: pd.DataFrame, first: str, second: str, column: str = "mase") -> Paired:
    """`column` of models `first` and `second` in `series_table`, paired by
    series (a series missing either, or non-finite, is left out): a choice
    between two forecasts weighs how consistently one wins across series,
    not only the means, which a few series can swing."""
    wide = table.pivot_table(index="series", columns="model", values=column)
    if first not in wide or second not in wide:
        return Paired(float("nan"), float("nan"), 0)
    diff = (wide[first] - wide[second]).to_numpy(np.float64)
    diff = diff[np.isfinite(diff)]
    if not len(diff):
        return Paired(float("nan"), float("nan"), 0)
    stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return Paired(float(diff.mean()), stderr, len(diff))
