"""A model's forecasts on rows it never trained on, beside the actual values
and persistence's: what the retrain gate scores a champion and a challenger
on (`gate.judge`). Produced by `Forecaster.holdout` (components.serving);
defined here so evaluation never imports serving."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Holdout:
    """Forecasts for every window whose first target is at or after a cut-off.

    Attributes:
        index: (W,) label of each window's first target row (`series@time`
            on a panel).
        actual: (W, T, K) true targets, in the forecaster's holdout units.
        forecast: (W, T, K) the served forecasts, same units: the network's,
            or under `model.combine` its mean with the classical models.
        persistence: (W, T, K) the last observed value repeated.
        quantiles: served quantile level -> (W, T, K), same units.
    """

    index: pd.Index
    actual: np.ndarray
    forecast: np.ndarray
    persistence: np.ndarray
    quantiles: dict = field(default_factory=dict)
