"""Classical baselines: ETS and ARIMA, fitted once on the training split, then
run forward over the scored windows without refitting.

A forecaster compares a network with the models they already trust. Both are
statsmodels state-space models, so one Kalman filter pass over the whole
series with the fitted parameters (`results.apply`) gives the predicted state
at every forecast origin; each window's h-step forecast follows from that
state and the model's matrices, with no refit and no loop over origins in
Python. Parameters come from the training rows alone; later rows are only
filtered through, as they would be observed in production.

- `ets`: additive-error exponential smoothing, level plus a damped additive
  trend or no trend (the lower AIC), and an additive season of
  `evaluate.season` rows when that is set (and the training rows hold two).
- `arima`: ARIMA(p, d, q), d = 1 when the augmented Dickey-Fuller test on the
  training rows cannot reject a unit root (p-value > 0.05), else 0 on the
  de-meaned rows; p, q in 0..2 by AIC on the last `SELECT_ROWS` rows, then
  the chosen order fitted on all of them.

Each target column is modelled on its own, in original units, with parameters
from its last `MAX_FIT_ROWS` training rows.
"""

import hashlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from components.common.memo import ProcessCache
from components.config.schema import WindowSpec
from components.data.windowing import window_starts

MODELS = ("ets", "arima")
_SYSTEM = ("design", "transition", "selection", "state_cov", "obs_cov")
# Parameters come from the last this-many training rows: a fit's cost grows
# with rows x states (a 52-week season has 54), and a baseline should follow
# the recent behaviour of a long series. Earlier rows are still filtered.
MAX_FIT_ROWS = 2000
# ARIMA's order is chosen on the last this-many of those rows (`_fit_arima`).
SELECT_ROWS = 500

# Every child of a compare, every seed, scores the same windows: fit once per
# process and data (keyed by the arrays' bytes), not once per model trained.
_cache = ProcessCache(32)


@dataclass(frozen=True)
class ClassicalForecast:
    """Forecasts (W, T, K) in original units and the wall time of the fits;
    for ARIMA also the forecast standard deviation (W, T, K) of the model's
    Gaussian prediction intervals (a reference for conformal intervals)."""

    forecast: np.ndarray
    seconds: float
    orders: list[str]  # the model chosen per target, e.g. "ARIMA(2,1,0)"
    std: np.ndarray | None = None


def forecast_windows(
    name: str,
    train: np.ndarray,
    scored: np.ndarray,
    spec: WindowSpec,
    season: int | None = None,
    between: np.ndarray | None = None,
) -> ClassicalForecast:
    """Fit `name` (`ets` or `arima`) on each column of `train` (N0, K) and
    forecast every window of `scored` (N1, K), the split being scored, from
    its last input row.

    Args:
        between: rows between the training rows and the scored split (the
            validation split when the test split is scored): filtered
            through, never fitted on.

    Returns:
        forecasts (W, T, K) for the windows `window_starts(N1, spec)`; the same
        object again for the same inputs in this process (`seconds` is the
        first fit's).
    """
    key = _key(name, train, scored, between, spec, season)
    return _cache.get_or_make(
        key, lambda: _forecast_windows(name, train, scored, spec, season, between)
    )


def _key(name, train, scored, between, spec: WindowSpec, season) -> str:
    digest = hashlib.sha256(
        f"{name}|{spec.model_dump_json()}|{season}|{MAX_FIT_ROWS}|{SELECT_ROWS}".encode()
    )
    for part in (train, scored, between):
        if part is not None:
            digest.update(np.ascontiguousarray(part, np.float64).tobytes())
            digest.update(str(np.shape(part)).encode())
    return digest.hexdigest()


def _forecast_windows(name, train, scored, spec, season, between) -> ClassicalForecast:
    start = time.perf_counter()
    between = np.zeros((0, train.shape[1])) if between is None else between
    train = train[-MAX_FIT_ROWS:]  # the filter starts where the fit did
    history = np.concatenate([train, between, scored]).astype(np.float64)
    offset = len(train) + len(between)  # row of scored[0] in `history`
    origins = offset + window_starts(len(scored), spec) + spec.input_width - 1
    columns, spreads, orders = [], [], []
    for k in range(train.shape[1]):
        fitted = fit_model(name, train[:, k].astype(np.float64), season)
        mean, std = forecast_from(
            fitted, history[:, k] - fitted.mean, origins, spec, name == "arima"
        )
        columns.append(mean + fitted.mean)
        spreads.append(std)
        orders.append(fitted.label)
    forecast = np.stack(columns, axis=-1)  # -> (W, T, K)
    std = np.stack(spreads, axis=-1) if name == "arima" else None
    return ClassicalForecast(forecast, time.perf_counter() - start, orders, std)


@dataclass(frozen=True)
class _Fitted:
    """A fitted candidate: `apply(series)` filters a whole series with the
    fitted parameters (nothing re-estimated) and returns the filter results."""

    aic: float
    label: str
    mean: float  # subtracted from the rows before fitting (ARIMA, d = 0)
    apply: Callable


def fit_model(name: str, y: np.ndarray, season: int | None) -> _Fitted:
    """The lower-AIC candidate of `name` fitted on the training rows `y`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short series
        if name == "ets":
            fitted = [_fit_ets(y, trend, season) for trend in (False, True)]
        elif name == "arima":
            fitted = _fit_arima(y)
        else:
            raise ValueError(
                f"Received an invalid value for argument `name`, expected one of "
                f"{list(MODELS)}, got {name!r}."
            )
    return min(fitted, key=lambda found: found.aic)


def _fit_ets(y: np.ndarray, trend: bool, season: int | None) -> _Fitted:
    """Initial states concentrated out of the likelihood while fitting (fast,
    even for long seasons), then held fixed ("known") when the model filters
    later rows: re-concentrating them on a longer series would let the
    scored rows shape the initial state."""
    from statsmodels.tsa.statespace.exponential_smoothing import (
        ExponentialSmoothing,
    )

    seasonal = season if season and len(y) >= 2 * season else None
    options = {"trend": trend, "damped_trend": trend, "seasonal": seasonal}
    results = ExponentialSmoothing(
        y, initialization_method="concentrated", **options
    ).fit(disp=False)
    state = results.initial_state  # level, [trend], [season...]
    known = {
        "initialization_method": "known",
        "initial_level": state[0],
        "initial_trend": state[1] if trend else None,
        "initial_seasonal": state[1 + trend :] if seasonal else None,
    }

    def apply(series):
        return ExponentialSmoothing(series, **options, **known).filter(results.params)

    label = f"ETS(A,{'Ad' if trend else 'N'},{'A' if seasonal else 'N'})"
    return _Fitted(results.aic, label, 0.0, apply)


def _fit_arima(y: np.ndarray) -> list[_Fitted]:
    """ARIMA(p, d, q) for p, q in 0..2; d by the ADF test. With d = 0 the rows
    are de-meaned (the mean is added back to forecasts), which keeps the
    state intercept zero and the forecast recursion plain.

    The order is chosen by AIC on the last `SELECT_ROWS` rows and only the
    chosen one is fitted on all of `y`: eight maximum-likelihood fits on a
    long series cost more than the network they are a reference for."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    from statsmodels.tsa.stattools import adfuller

    d = int(adfuller(y[-SELECT_ROWS:], autolag="AIC")[1] > 0.05)
    mean = 0.0 if d else float(y.mean())
    orders = [(p, d, q) for p in range(3) for q in range(3) if p or q or d]
    if len(y) > SELECT_ROWS:
        tail = y[-SELECT_ROWS:] - mean
        aic = {o: SARIMAX(tail, order=o).fit(disp=False).aic for o in orders}
        orders = [min(aic, key=aic.get)]
    fitted = []
    for order in orders:
        results = SARIMAX(y - mean, order=order).fit(disp=False)
        label = f"ARIMA({order[0]},{order[1]},{order[2]})"
        fitted.append(_Fitted(results.aic, label, mean, results.apply))
    return fitted


def forecast_from(
    fitted,
    series: np.ndarray,
    origins: np.ndarray,
    spec: WindowSpec,
    with_std: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(W, T) forecasts of steps offset+1 .. offset+T after each origin row
    and, `with_std`, their standard deviations, from the predicted states and
    their covariances of one filter pass over `series` (the models here have
    time-invariant matrices and zero intercepts). The deviations hold for
    models with an unconcentrated scale (ARIMA), not for ETS, whose 50-odd
    seasonal states would also make the covariance recursion costly."""
    applied = fitted.apply(series)  # one filter pass, fitted parameters
    matrix = {k: np.asarray(applied.model[k]) for k in _SYSTEM}
    design, transition = matrix["design"], matrix["transition"]  # (1, S), (S, S)
    noise = matrix["selection"] @ matrix["state_cov"] @ matrix["selection"].T
    state = applied.predicted_state[:, origins + 1]  # (S, W): a(t+1 | t)
    means = []
    for _ in range(spec.offset + spec.horizon):
        means.append(design @ state)  # (1, W)
        state = transition @ state
    mean = np.concatenate(means[spec.offset :]).T  # -> (W, T)
    if not with_std:
        return mean, None
    cov = applied.predicted_state_cov[:, :, origins + 1]  # (S, S, W)
    variances = []
    for _ in range(spec.offset + spec.horizon):
        variances.append(
            np.einsum("is,stw,it->w", design, cov, design) + matrix["obs_cov"][0, 0]
        )
        cov = np.einsum("as,stw,bt->abw", transition, cov, transition) + noise[..., None]
    return mean, np.sqrt(np.stack(variances[spec.offset :], axis=1))
