"""Prediction intervals for any point forecaster: split conformal calibration.

A point forecast does not say how far off it may be. Split conformal
prediction turns any model's errors on windows it never trained on (the
validation split) into intervals with a coverage guarantee on exchangeable
data: the interval at level c is the forecast +- the ceil((n + 1) c)-th smallest
absolute validation error, per horizon step and target (errors grow with the
lead time, and each target has its own units). NeuralForecast
(`PredictionIntervals`) and Darts (`ConformalNaiveModel`) offer the same; here
it needs no retraining and works for every kind.

The scores a forecaster reads, per level c (alpha = 1 - c):
- coverage: the share of actual values inside the interval (nominal: c);
- width: the mean interval width, original units;
- interval (Winkler) score: width + (2 / alpha) x the distance by which the
  actual value falls outside; lower is better, and a too-narrow interval pays.

A quantile model (`model.quantiles`) forecasts its own quantiles; its central
intervals are the symmetric pairs (0.1 and 0.9: 80 %). Conformalized quantile
regression (Romano et al. 2019) calibrates them on the validation windows:
each pair moves out (or in) by the finite-sample quantile of how far the
actual values fall outside it, so a model that is too sure or too unsure gets
the coverage it claims. Beside the interval scores it is judged by:
- pinball loss per level, original units (what the model was trained on);
- weighted quantile loss (wQL): 2 x pinball summed over windows / sum of
  |actual|, averaged over levels; scale-free, and the approximation of the
  scaled CRPS that GluonTS and NeuralForecast report.

Shape legend: W windows, T horizon steps, K targets, Q quantile levels.
"""

import math
from dataclasses import dataclass, field

import numpy as np


def level_name(level: float) -> str:
    """0.8 -> "80", 0.975 -> "97.5": the level in metric names."""
    return f"{100 * level:g}"


def conformal_radius(errors: np.ndarray, level: float) -> np.ndarray:
    """Half-width (T, K) of the central interval at `level` from calibration
    errors (W, T, K) = actual - forecast, original units.

    The finite-sample quantile ceil((n + 1) level) / n of the absolute errors;
    with too few windows for it (n < 1 / (1 - level) - 1) the largest error.
    """
    return finite_sample_quantile(np.abs(np.asarray(errors, np.float64)), level)


def finite_sample_quantile(scores: np.ndarray, level: float) -> np.ndarray:
    """Split conformal's quantile of calibration scores (W, ...) along the
    windows: the ceil((n + 1) level)-th smallest, the largest when n is too
    small for that rank."""
    n = scores.shape[0]
    rank = min(math.ceil((n + 1) * level), n)  # 1-based
    return np.sort(scores, axis=0)[rank - 1]


def windows_needed(level: float) -> int:
    """Calibration windows below which the interval at `level` is simply the
    largest error seen (ceil((n + 1) level) > n), and no longer has its
    coverage guarantee: 4 for 80 %, 19 for 95 %."""
    return math.ceil(level / (1.0 - level) - 1e-9)


def interval_metrics(
    actual: np.ndarray,
    forecast: np.ndarray,
    radius: np.ndarray,
    level: float,
    prefix: str = "test_",
) -> dict[str, float]:
    """Coverage, mean width and mean interval score of forecast +- radius.

    Args:
        actual, forecast: (W, T, K) original units.
        radius: (T, K) from `conformal_radius`, or (W, T, K) for intervals
            whose width varies by window (a model's own Gaussian intervals).

    Returns:
        `{prefix}coverage_{L}`, `{prefix}width_{L}_raw`,
        `{prefix}interval_score_{L}_raw`, and the coverage at each lead time
        `{prefix}coverage_{L}_h{h}` when T > 1 (L = `level_name(level)`).
    """
    radius = radius[None] if np.ndim(radius) == 2 else radius
    return interval_scores(actual, forecast - radius, forecast + radius, level, prefix)


def interval_scores(
    actual: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    level: float,
    prefix: str = "test_",
) -> dict[str, float]:
    """`interval_metrics` of the interval [lower, upper] (each (W, T, K))."""
    actual = np.asarray(actual, np.float64)
    inside = (actual >= lower) & (actual <= upper)
    alpha = 1.0 - level
    penalty = (2.0 / alpha) * (
        np.maximum(lower - actual, 0.0) + np.maximum(actual - upper, 0.0)
    )
    name = level_name(level)
    out = {
        f"{prefix}coverage_{name}": float(inside.mean()),
        f"{prefix}width_{name}_raw": float((upper - lower).mean()),
        f"{prefix}interval_score_{name}_raw": float((upper - lower + penalty).mean()),
    }
    if actual.shape[1] > 1:
        for h, share in enumerate(inside.mean(axis=(0, 2))):
            out[f"{prefix}coverage_{name}_h{h + 1}"] = float(share)
    return out


def conformal_intervals(
    calibration_actual: np.ndarray,
    calibration_forecast: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    levels: list[float],
    calibration_scale: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[float, np.ndarray]]:
    """Calibrate on one set of windows, score on another (all (W, T, K),
    original units); return the metrics of every level and its radius (T, K).

    With `calibration_scale` and `scale` ((W, K) each: a panel's per-series
    scale of each window) the errors are calibrated in units of that scale
    and each window's interval is the radius times its own scale, so a
    series ten times larger gets intervals ten times wider; the radii
    returned are then in those units.
    """
    errors = np.asarray(calibration_actual, np.float64) - calibration_forecast
    if calibration_scale is not None:
        errors = errors / calibration_scale[:, None, :]
    metrics, radii = {}, {}
    for level in levels:
        radii[level] = conformal_radius(errors, level)
        radius = radii[level] if scale is None else radii[level] * scale[:, None, :]
        metrics.update(interval_metrics(actual, forecast, radius, level))
    return metrics, radii


def quantile_name(level: float) -> str:
    """0.1 -> "q0.1": a quantile in metric and column names."""
    return f"q{level:g}"


def central_pairs(levels: list[float]) -> list[tuple[float, int, int]]:
    """(interval level, index of its lower quantile, of its upper) for each
    pair of quantile levels symmetric about 0.5, narrowest interval first."""
    pairs = []
    for i, low in enumerate(levels):
        upper = [j for j, q in enumerate(levels) if abs(q - (1 - low)) < 1e-9]
        if low < 0.5 and upper:
            pairs.append((round(1 - 2 * low, 9), i, upper[0]))
    return sorted(pairs)


def pinball_loss(actual: np.ndarray, quantile: np.ndarray, level: float) -> np.ndarray:
    """Elementwise pinball loss of the `level` quantile forecast."""
    error = np.asarray(actual, np.float64) - quantile
    return np.maximum(level * error, (level - 1.0) * error)


def quantile_metrics(
    actual: np.ndarray,
    quantiles: np.ndarray,
    levels: list[float],
    prefix: str = "test_",
) -> dict[str, float]:
    """Scores of quantile forecasts (W, T, K, Q) against actual values
    (W, T, K), original units: `{prefix}pinball_<q>_raw` per level and their
    mean `{prefix}pinball_raw`, `{prefix}wql` (and `{prefix}wql_h<h>` per lead
    time when T > 1), and the interval scores of every central pair."""
    actual = np.asarray(actual, np.float64)
    losses = np.stack(
        [pinball_loss(actual, quantiles[..., j], q) for j, q in enumerate(levels)],
        axis=-1,
    )  # (W, T, K, Q)
    out = {
        f"{prefix}pinball_{quantile_name(q)}_raw": float(losses[..., j].mean())
        for j, q in enumerate(levels)
    }
    out[f"{prefix}pinball_raw"] = float(losses.mean())
    size = max(float(np.abs(actual).sum()), 1e-12)
    out[f"{prefix}wql"] = float(2 * losses.sum(axis=(0, 1, 2)).mean() / size)
    if actual.shape[1] > 1:
        step_size = np.maximum(np.abs(actual).sum(axis=(0, 2)), 1e-12)  # (T,)
        per_step = 2 * losses.sum(axis=(0, 2)).mean(axis=-1) / step_size
        out.update({f"{prefix}wql_h{h + 1}": float(v) for h, v in enumerate(per_step)})
    for level, low, high in central_pairs(levels):
        out.update(
            interval_scores(
                actual, quantiles[..., low], quantiles[..., high], level, prefix
            )
        )
    return out


def conformal_shifts(
    actual: np.ndarray,
    quantiles: np.ndarray,
    levels: list[float],
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """How far to move each quantile (Q, T, K) so every central pair covers
    its level on these calibration windows (conformalized quantile
    regression, per horizon step and target): the lower quantile by -c, the
    upper by +c, c the finite-sample `level` quantile of max(lower - y,
    y - upper) (negative when the pair is wider than it needs to be).
    Quantiles outside a pair do not move. With `scale` (W, K), the shifts are
    in units of each window's scale (a panel's series)."""
    actual = np.asarray(actual, np.float64)
    quantiles = np.asarray(quantiles, np.float64)
    if scale is not None:
        actual = actual / scale[:, None, :]
        quantiles = quantiles / scale[:, None, :, None]
    shifts = np.zeros((len(levels), *actual.shape[1:]))
    for level, low, high in central_pairs(levels):
        lower, upper = quantiles[..., low], quantiles[..., high]
        outside = np.maximum(lower - actual, actual - upper)
        margin = finite_sample_quantile(outside, level)  # (T, K)
        shifts[low], shifts[high] = -margin, margin
    return shifts


def shifted_quantiles(
    quantiles: np.ndarray,
    shifts: np.ndarray,
    levels: list[float],
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """Quantiles (W, T, K, Q) moved by `conformal_shifts` (Q, T, K), times
    each window's `scale` (W, K) when the shifts are in its units. A pair
    narrowed past its neighbours is held at them (each quantile at least the
    one inside it), so the served quantiles still never cross."""
    moved = np.moveaxis(np.asarray(shifts, np.float64), 0, -1)[None]  # (1, T, K, Q)
    if scale is not None:
        moved = moved * scale[:, None, :, None]
    out = np.asarray(quantiles, np.float64) + moved
    m = levels.index(0.5)
    out[..., m:] = np.maximum.accumulate(out[..., m:], axis=-1)
    out[..., : m + 1] = np.minimum.accumulate(out[..., m::-1], axis=-1)[..., ::-1]
    return out


@dataclass(frozen=True)
class Calibration:
    """What turns a model's outputs into the quantiles a forecaster serves.

    A point model: `radii`, central level -> (T, K) conformal half-width
    around the forecast. A quantile model: its head's `levels`, the
    `served` ones (`model.quantiles`) and `shifts` (Q, T, K) from
    `conformal_shifts` (zeros when not calibrated). A panel's radii and
    shifts are in units of each series' scale.
    """

    radii: dict = field(default_factory=dict)
    levels: tuple = ()
    served: tuple = ()
    shifts: np.ndarray | None = None

    def quantiles(
        self,
        point: np.ndarray,
        outputs: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> dict[float, np.ndarray]:
        """Served quantile level -> values (W, T, K), lowest first, from the
        point forecasts (W, T, K) or a quantile model's outputs (W, T, K, Q),
        original units; `scale` (W, K): each window's series scale."""
        if self.levels:
            moved = self.moved(outputs, scale)
            return {q: moved[..., self.levels.index(q)] for q in self.served}
        out = {}
        for level, radius in self.radii.items():
            half = np.asarray(radius, np.float64)[None]  # (1, T, K)
            if scale is not None:
                half = half * scale[:, None, :]
            low, high = round((1 - level) / 2, 9), round((1 + level) / 2, 9)
            out[low], out[high] = point - half, point + half
        return dict(sorted(out.items()))

    def moved(self, outputs: np.ndarray, scale: np.ndarray | None = None):
        """A quantile model's outputs (W, T, K, Q) at every head level, moved
        by the calibration's shifts (unmoved when it has none)."""
        shifts = self.shifts
        if shifts is None:
            shifts = np.zeros((len(self.levels), *np.shape(outputs)[1:3]))
        return shifted_quantiles(outputs, shifts, list(self.levels), scale)

    def to_dict(self) -> dict:
        """JSON-ready (the forecaster's metadata)."""
        return {
            "interval_radii": {
                str(k): np.asarray(v).tolist() for k, v in self.radii.items()
            },
            "quantile_levels": list(self.levels),
            "served_quantiles": list(self.served),
            "quantile_shifts": None if self.shifts is None else self.shifts.tolist(),
        }

    @classmethod
    def from_dict(cls, meta: dict) -> "Calibration":
        """Inverse of `to_dict` (a forecaster saved before quantile models
        has only `interval_radii`)."""
        shifts = meta.get("quantile_shifts")
        return cls(
            radii={
                float(k): np.asarray(v, np.float64)
                for k, v in meta.get("interval_radii", {}).items()
            },
            levels=tuple(meta.get("quantile_levels", ())),
            served=tuple(meta.get("served_quantiles", ())),
            shifts=None if shifts is None else np.asarray(shifts, np.float64),
        )


def bands(quantiles: dict[float, np.ndarray]) -> dict[float, tuple]:
    """Central level -> (lower, upper) of every symmetric pair among served
    quantiles (level -> values)."""
    levels = list(quantiles)
    return {
        level: (quantiles[levels[low]], quantiles[levels[high]])
        for level, low, high in central_pairs(levels)
    }
