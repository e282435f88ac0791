"""`auto` settings: pick window normalization and the linear skip's form by the
validation error of the least-squares linear model each one starts from.

Measured on eight real series (bench/README.md), no fixed choice wins
everywhere: `last` halves the error on a drifting, differenced macro series
and loses a third on sunspots, which revert to their mean. What decides it is
the data's behaviour, and a linear fit in each normalized space shows that
behaviour for the price of a few least-squares solves: in the `last` space a
linear autoregression cannot revert to a level (its forecasts move with the
last value), in the `none` space it can. The network then starts from the
linear fit of the chosen space (the skip), so the proxy is what training
builds on.
"""

from dataclasses import dataclass

import numpy as np

from components.evaluation import fit_linear_baseline, predict_linear_baseline
from components.models.skip import fit_shared_linear


@dataclass(frozen=True)
class LinearChoice:
    """The chosen settings and the validation MSE of every candidate.

    Attributes:
        window_norm, skip: the settings with the lowest validation MSE.
        scores: "window_norm/skip" -> validation MSE (normalized units).
    """

    window_norm: str
    skip: str
    scores: dict[str, float]

    def describe(self) -> str:
        ranked = sorted(self.scores.items(), key=lambda kv: kv[1])
        table = ", ".join(f"{name} {mse:.4g}" for name, mse in ranked)
        return (
            f"window_norm={self.window_norm}, skip={self.skip} by the validation "
            f"MSE of the linear fit in each setting: {table}"
        )


def choose_linear_setup(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    norms: list[str],
    skips: list[str],
    positions: tuple[int, ...],
) -> LinearChoice:
    """Fit the linear skip of each (window_norm, skip) on the training windows
    and score it on the validation windows, both (W, L, C) / (W, T, K).

    Args:
        norms: candidates among `none`, `last`, `revin`.
        skips: candidates among `linear`, `shared` (`shared` needs `positions`).
    """
    scores = {}
    for norm in norms:
        x_fit, y_fit, _ = _normalized(train, norm, positions)
        x_val, _, back = _normalized(val, norm, positions)
        for skip in skips:
            if skip == "shared":
                coef = fit_shared_linear(x_fit, y_fit, positions)  # (L + 1, T)
                forecast = _shared_forecast(coef, x_val, positions)
            else:
                coef = fit_linear_baseline(x_fit, y_fit)
                forecast = predict_linear_baseline(coef, x_val, val[1].shape[1:])
            error = back(forecast) - np.asarray(val[1], np.float64)
            scores[f"{norm}/{skip}"] = float(np.mean(error**2))
    best = min(scores, key=scores.get)
    norm, skip = best.split("/")
    return LinearChoice(norm, skip, scores)


def _normalized(windows, norm: str, positions):
    """Windows and targets as a network with `norm` sees them, and the map of
    its forecasts back to the targets' units."""
    x, y = (np.asarray(a, np.float64) for a in windows)
    if norm == "none":
        return x, y, lambda forecast: forecast
    from components.models.window_norm import WindowNormalization

    layer = WindowNormalization(norm, positions, x.shape[2])
    shifted, loc, scale = (np.asarray(a, np.float64) for a in layer(x.astype("float32")))
    return shifted, (y - loc) / scale, lambda forecast: forecast * scale + loc


def _shared_forecast(coef: np.ndarray, x: np.ndarray, positions) -> np.ndarray:
    series = x[:, :, list(positions)]  # (W, L, K)
    return np.einsum("wlk,lt->wtk", series, coef[:-1]) + coef[-1][None, :, None]


def resolve_auto(spec, train, val, positions: tuple[int, ...]):
    """`spec` with `auto` settings replaced by `choose_linear_setup`'s choice,
    and the choice (None when nothing was `auto`).

    `auto` window normalization considers `none`, `last` and `revin` when
    every target is an input feature (`positions`), else `none` only; an
    `auto` skip considers `linear` and, with `positions`, `shared`. With no
    validation windows `auto` means `none` and `linear`.
    """
    if "auto" not in (spec.window_norm, spec.skip):
        return spec, None
    norms = [spec.window_norm]
    if spec.window_norm == "auto":
        norms = ["none", "last", "revin"] if positions else ["none"]
    skips = [spec.skip if spec.skip != "none" else "linear"]
    if spec.skip == "auto":
        skips = ["linear", "shared"] if positions else ["linear"]
    if not len(val[0]):
        choice = LinearChoice(norms[0] if len(norms) == 1 else "none", "linear", {})
    else:
        choice = choose_linear_setup(train, val, norms, skips, positions)
    update = {}
    if spec.window_norm == "auto":
        update["window_norm"] = choice.window_norm
    if spec.skip == "auto":
        update["skip"] = choice.skip
    return spec.model_copy(update=update), choice
