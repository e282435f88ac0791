"""`auto` settings: pick window normalization and the linear skip's form by the
validation error of the least-squares linear model each one starts from.

The network starts from the linear fit of the chosen setting (the skip), and a
few least-squares solves show how each setting suits the data: in the `last`
space a linear autoregression cannot revert to a level, in the `none` space
it can; a shared map cannot read one column from another, the full one can.

Measured on ten real series (bench/README.md): for the skip the proxy picks
well (the shared map where it wins: gas furnace, Seattle weather, macro), so
`model.skip` defaults to `auto`; for window normalization it was better than
`none` on 4 series and worse on 3, so `model.window_norm` stays `none`.
"""

from dataclasses import dataclass

import numpy as np

from components.models.linear import fit_linear_baseline, predict_linear_baseline
from components.models.skip import fit_shared_linear, predict_shared_linear
from components.models.window_norm import WindowNormalization, apply_norm


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
                forecast = predict_shared_linear(coef, x_val, positions)
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
    layer = WindowNormalization(norm, positions, x.shape[2])
    shifted, normalized_y, loc, scale = apply_norm(layer, x, y)
    return shifted, normalized_y, lambda forecast: forecast * scale + loc


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
