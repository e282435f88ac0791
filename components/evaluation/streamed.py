"""Scores of a streamed panel (`data.stream`), shard by shard: the model,
persistence and seasonal naive on every window of a split, with the
in-memory evaluation's metric names and definitions (tests/test_stream.py
checks they are equal)."""

import numpy as np
import pandas as pd

from components.data.stream import StreamedPanel, shard_windows
from components.data.windowing import window_starts
from components.evaluation import panel_metrics
from components.evaluation.evaluate import (
    _prefix,
    persistence_forecast,
    seasonal_naive_forecast,
)
from components.evaluation.metrics import mase_scale, smape_terms
from components.models import predict


def mase_scale_of(season: int | None):
    """The scan's `scale_of`: each series' in-sample (seasonal) naive error."""
    return lambda train: mase_scale(train, season)


def score(
    model, panel: StreamedPanel, split: str = "test", batch_size: int = 4096,
    season: int | None = None,
):
    """The model, persistence and (with a season) seasonal naive on every
    window of `split`, file by file: (metrics, per-series table). Metric
    names are the in-memory evaluation's (`test_mase`,
    `baseline_persistence_test_mase`, ...); pooled scores (mae_raw, smape,
    nd) sum over windows, MASE and the share of series beating persistence
    average over series."""
    window, targets = panel.window, panel.targets
    tables, sums = [], {}
    for k in range(len(panel.shards)):
        if not panel.windows[split][panel.first[k] : panel.first[k + 1]].sum():
            continue
        found = shard_windows(panel, k, split)
        starts = window_starts(len(found.levels), window, found.bounds)
        shift = window.input_width + window.offset
        actual = found.levels[starts[:, None] + shift + np.arange(window.horizon)]
        model_out = panel.normalizer.for_windows(found.owners).inverse(
            predict(model, found.x, batch_size), targets
        )
        forecasts = {
            "model": model_out,
            "persistence": persistence_forecast(found.levels, window, found.bounds),
        }
        if season:
            forecasts["seasonal_naive"] = seasonal_naive_forecast(
                found.levels, window, season, found.bounds
            )
        tables.append(
            panel_metrics.series_table(
                panel.series, found.owners, actual, forecasts, panel.scale
            )
        )
        std = panel.normalizer.std[found.owners][:, None, :]  # (W, 1, K)
        for name, forecast in forecasts.items():
            error = np.abs(forecast - actual)
            add = np.array([
                error.sum(), (error**2).sum(), (error / std).sum(),
                ((error / std) ** 2).sum(), smape_terms(actual, forecast).sum(),
                np.abs(actual).sum(), error.size,
            ])  # fmt: skip
            sums[name] = sums.get(name, 0) + add
    table = pd.concat(tables, ignore_index=True)
    metrics = panel_metrics.aggregate(table, lambda n: _prefix(n, split))
    for name, (error, squared, mae, mse, smape, actual, n) in sums.items():
        prefix = _prefix(name, split)
        metrics.update({
            f"{prefix}mae_raw": error / n, f"{prefix}mse_raw": squared / n,
            f"{prefix}mae": mae / n, f"{prefix}mse": mse / n,
            f"{prefix}smape": smape / n,
            f"{prefix}nd": error / actual if actual > 0 else float("nan"),
        })  # fmt: skip
    return metrics, table
