"""Classical references for panels: ETS and Theta fitted on each series'
training rows, then run forward over its scored windows without refitting.

A global network earns its place on a panel only by beating what a
forecaster would fit to each series alone (the competition panels judge
every method that way). Both models are fitted once per series on its
training rows (parameters and initial states), and later rows are only
filtered through with those parameters, as they would be observed in
production; each scored window is forecast from the state at its last input
row.

- `ets`: Holt-Winters exponential smoothing (statsmodels, least-squares fit):
  level, no trend or a damped additive trend, and no season, an additive
  one or (positive series) a multiplicative one of `evaluate.season` rows
  when the training rows hold two seasons; the lowest AICc per series.
- `theta`: the Theta method as statsmodels' `ThetaModel` fits it (the M3
  winner: classical multiplicative decomposition when a 90 % autocorrelation
  test finds the season, SES with drift at half the linear trend's slope).
- `arima`: `classical`'s ARIMA on each series (optional: it costs most).

Fits run in worker processes on big panels (`fit_panel`; in the process
itself where that is a daemon, such as a Dask worker) and are cached per
process, so every seed and child of a compare reuses them.
"""

import hashlib
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from components.common.memo import ProcessCache

MODELS = ("ets", "theta", "arima")
# Below this many series the fits run in this process: starting workers
# (a fresh interpreter importing statsmodels each) costs more than it saves.
PARALLEL_FROM = 64
_cache = ProcessCache(16)


@dataclass(frozen=True)
class SeriesFit:
    """One series' fitted model: what `forecast_series` needs, picklable.

    Attributes:
        label: the model chosen, e.g. "ETS(Ad,M)" or "Theta(M)".
        params: the fitted parameters (floats and arrays).
    """

    model: str
    label: str
    params: dict = field(default_factory=dict)


def fit_series(model: str, y: np.ndarray, season: int | None) -> SeriesFit:
    """Fit `model` on one series' training rows `y` (1-D, original units)."""
    y = np.asarray(y, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short series
        if model == "ets":
            return _fit_ets(y, season)
        if model == "theta":
            try:
                return _fit_theta(y, season)
            except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
                return SeriesFit("naive", "naive")  # too few rows for a slope
        if model == "arima":
            return _fit_arima(y)
    raise ValueError(
        f"Received an invalid value for argument `model`, expected one of "
        f"{list(MODELS)}, got {model!r}."
    )


def forecast_series(
    fit: SeriesFit,
    history: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    offset: int = 0,
) -> np.ndarray:
    """(W, horizon) forecasts of steps offset+1 .. offset+horizon after each
    origin row of `history` (the series' training rows first, then the rows
    observed since), with the parameters of `fit`."""
    history = np.asarray(history, np.float64)
    origins = np.asarray(origins, np.int64)
    if not len(origins):
        return np.zeros((0, horizon))
    steps = offset + np.arange(1, horizon + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fit.model == "ets":
            return _forecast_ets(fit.params, history, origins, steps)
        if fit.model == "theta":
            return _forecast_theta(fit.params, history, origins, steps)
        if fit.model == "arima":
            return _forecast_arima(fit.params, history, origins, horizon, offset)
        if fit.model == "naive":
            return np.repeat(history[origins][:, None], horizon, axis=1)
    raise ValueError(f"unknown fitted model {fit.model!r}")


@dataclass(frozen=True)
class PanelPart:
    """One split of a panel as the references read it: target levels (N, K)
    in original units, series offsets (S + 1,) and each row's time key (N,)."""

    levels: np.ndarray
    bounds: np.ndarray
    times: np.ndarray
    padded: np.ndarray | None = None  # (S,) repeated rows in front, not data

    def rows(self, j: int) -> tuple[int, int]:
        """Series j's rows that are data (its padding skipped)."""
        extra = 0 if self.padded is None else int(self.padded[j])
        return int(self.bounds[j]) + extra, int(self.bounds[j + 1])


@dataclass(frozen=True)
class PanelForecast:
    """Forecasts (W, T, K) of every scored window, series after series, the
    wall seconds of the fits (cached fits: the first fit's), and how many
    series chose each model."""

    forecast: np.ndarray
    seconds: float
    chosen: dict[str, int]


def forecast_panel(
    model: str,
    parts: list[PanelPart],
    spec,
    season: int | None = None,
    workers: int | str | None = None,
) -> PanelForecast:
    """Fit `model` on each series' rows of `parts[0]` (training) and forecast
    every window of `parts[-1]` (the scored split); the parts between are
    filtered through. Each series' history is its rows of every part in time
    order, each time once (a scored part begins with rows of the part before,
    its first window's inputs)."""
    from components.data.windowing import window_starts

    n_targets = parts[0].levels.shape[1]
    n_series = len(parts[0].bounds) - 1
    histories = [_history(parts, j) for j in range(n_series)]
    scored = parts[-1]
    out, seconds, chosen = [], 0.0, {}
    for k in range(n_targets):
        train = [parts[0].levels[slice(*parts[0].rows(j)), k] for j in range(n_series)]
        fits, spent = fit_panel(model, train, season, workers)
        seconds += spent
        columns = []
        for j, fit in enumerate(fits):
            length = int(scored.bounds[j + 1] - scored.bounds[j])
            starts = window_starts(length, spec)
            if not len(starts):
                continue
            history = histories[j][:, k]
            # the part's data rows end the history (its padding is not there)
            origins = len(history) - length + starts + spec.input_width - 1
            origins = np.maximum(origins, 0)
            columns.append(
                forecast_series(fit, history, origins, spec.horizon, spec.offset)
            )
            chosen[fit.label] = chosen.get(fit.label, 0) + 1
        out.append(np.concatenate(columns) if columns else np.zeros((0, spec.horizon)))
    return PanelForecast(np.stack(out, axis=-1), seconds, chosen)


def _history(parts: list[PanelPart], j: int) -> np.ndarray:
    """Series j's rows of every part, in time order, each time once."""
    pieces, last = [], None
    for part in parts:
        a, b = part.rows(j)
        times, levels = part.times[a:b], part.levels[a:b]
        if last is not None:
            levels = levels[times > last]
            times = times[times > last]
        if len(times):
            pieces.append(levels)
            last = times[-1]
    if not pieces:
        return np.zeros((0, parts[0].levels.shape[1]))
    return np.concatenate(pieces)


def fit_panel(
    model: str,
    series: list[np.ndarray],
    season: int | None,
    workers: int | str | None = None,
) -> tuple[list[SeriesFit], float]:
    """`fit_series` on every series (in `workers` processes, default: one per
    core, when there are `PARALLEL_FROM` or more; on the Dask cluster whose
    scheduler `workers` names, `tcp://host:8786`); (the fits, wall seconds).
    The same list again for the same inputs in this process."""
    address = workers if isinstance(workers, str) else None
    workers = (None if address else workers) or os.cpu_count() or 1

    def make():
        start = time.perf_counter()
        if address:
            fits = _fit_on_dask(model, series, season, address)
        elif workers > 1 and len(series) >= PARALLEL_FROM and _may_start_processes():
            fits = _fit_in_processes(model, series, season, workers)
        else:
            fits = [fit_series(model, y, season) for y in series]
        return fits, time.perf_counter() - start

    return _cache.get_or_make(_key(model, series, season), make)


def _may_start_processes() -> bool:
    """False inside a daemonic process (a Dask worker's, a pool's), which
    may not have children: the fits then run in it, one after another."""
    import multiprocessing

    return not multiprocessing.current_process().daemon


def _fit_in_processes(model, series, season, workers) -> list[SeriesFit]:
    """Chunks of series to fresh interpreters (spawned: a forked TensorFlow
    process can deadlock), a few chunks per worker to even out the load."""
    import multiprocessing

    chunks = _chunks(series, 4 * workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        done = pool.map(
            _fit_chunk, [model] * len(chunks), chunks, [season] * len(chunks)
        )
        return [fit for chunk in done for fit in chunk]


def _fit_on_dask(model, series, season, address: str) -> list[SeriesFit]:
    """Chunks of series to the workers of the Dask scheduler at `address`
    (a few per worker; a chunk whose worker dies is run again elsewhere)."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        chunks = _chunks(series, 4 * workers)
        futures = client.map(
            _fit_chunk, [model] * len(chunks), chunks, [season] * len(chunks),
            pure=False,
        )  # fmt: skip
        return [fit for chunk in client.gather(futures) for fit in chunk]


def _chunks(series: list[np.ndarray], n: int) -> list[list[np.ndarray]]:
    bounds = np.linspace(0, len(series), min(len(series), n) + 1).astype(int)
    return [series[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _fit_chunk(model: str, chunk: list[np.ndarray], season) -> list[SeriesFit]:
    return [fit_series(model, y, season) for y in chunk]


def _key(model, series, season) -> str:
    digest = hashlib.sha256(f"{model}|{season}".encode())
    for y in series:
        y = np.ascontiguousarray(y, np.float64)
        digest.update(str(len(y)).encode())
        digest.update(y.tobytes())
    return digest.hexdigest()


# --- ETS ---------------------------------------------------------------------


def has_season(y: np.ndarray, season: int | None) -> bool:
    """The M4 competition's test for a season of `season` rows: the
    autocorrelation at that lag beyond its 90 % limit (needs three seasons).
    Naive2's rule; ETS does not use it (gating its seasonal candidates by
    it cost M1 monthly 0.4 sMAPE points and no time: AICc chooses better)."""
    from statsmodels.tsa.stattools import acf

    if not season or season <= 1 or len(y) < 3 * season or np.ptp(y) == 0:
        return False
    r = acf(y, nlags=season, fft=False)
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[1:season] ** 2)) / len(y))
    return bool(abs(r[season]) > limit)


def _ets_candidates(y: np.ndarray, season: int | None):
    seasonal = [None]
    if season and season > 1 and len(y) >= 2 * season:
        seasonal += ["add"] + (["mul"] if (y > 0).all() else [])
    trends = [None, "add"] if len(y) >= 4 else [None]
    return [(trend, kind) for trend in trends for kind in seasonal]


def _fit_ets(y: np.ndarray, season: int | None) -> SeriesFit:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    best, best_score = None, np.inf
    for trend, seasonal in _ets_candidates(y, season):
        options = {
            "trend": trend,
            "damped_trend": trend is not None,
            "seasonal": seasonal,
            "seasonal_periods": season if seasonal else None,
        }
        try:
            results = ExponentialSmoothing(y, **options).fit(use_brute=False)
        except (ValueError, np.linalg.LinAlgError):
            continue
        score = results.aicc if np.isfinite(results.aicc) else results.aic
        if np.isfinite(score) and score < best_score and np.isfinite(results.sse):
            best, best_score = (options, results.params), score
    if best is None:
        return SeriesFit("naive", "naive")
    options, params = best
    fitted = {
        **options,
        **{k: params[k] for k in ("smoothing_level", "initial_level")},
        "smoothing_trend": params.get("smoothing_trend"),
        "damping_trend": params.get("damping_trend"),
        "initial_trend": params.get("initial_trend"),
        "smoothing_seasonal": params.get("smoothing_seasonal"),
        "initial_seasons": params.get("initial_seasons"),
    }
    trend = "Ad" if options["trend"] else "N"
    kind = {None: "N", "add": "A", "mul": "M"}[options["seasonal"]]
    return SeriesFit("ets", f"ETS({trend},{kind})", fitted)


def _ets_states(params: dict, history: np.ndarray):
    """Level, trend and season after each row of `history`, filtered with
    the fitted parameters and initial states (nothing re-estimated)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    options = {
        k: params[k] for k in ("trend", "damped_trend", "seasonal", "seasonal_periods")
    }
    known = {
        "initialization_method": "known",
        "initial_level": params["initial_level"],
        "initial_trend": params["initial_trend"] if params["trend"] else None,
        "initial_seasonal": params["initial_seasons"] if params["seasonal"] else None,
    }
    results = ExponentialSmoothing(history, **options, **known).fit(
        smoothing_level=params["smoothing_level"],
        smoothing_trend=params["smoothing_trend"] if params["trend"] else None,
        smoothing_seasonal=params["smoothing_seasonal"] if params["seasonal"] else None,
        damping_trend=params["damping_trend"] if params["trend"] else None,
        optimized=False,
    )
    return results


def _forecast_ets(params: dict, history, origins, steps) -> np.ndarray:
    filtered = _ets_states(params, history)
    level = np.asarray(filtered.level)[origins][:, None]  # (W, 1)
    mean = np.repeat(level, len(steps), axis=1)  # (W, T)
    if params["trend"]:
        phi = params["damping_trend"]
        damped = np.cumsum(phi ** np.arange(1, steps[-1] + 1))[steps - 1]  # (T,)
        mean = mean + np.asarray(filtered.trend)[origins][:, None] * damped
    if params["seasonal"]:
        m = params["seasonal_periods"]
        # the season state of each row, the m initial ones before row 0
        seasons = np.concatenate(
            [params["initial_seasons"], np.asarray(filtered.season)]
        )
        back = m * ((steps - 1) // m + 1)  # latest row of the same phase
        phase = seasons[m + origins[:, None] + steps - back]
        mean = mean * phase if params["seasonal"] == "mul" else mean + phase
    return mean


# --- Theta -------------------------------------------------------------------


def _fit_theta(y: np.ndarray, season: int | None) -> SeriesFit:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    period = season if season and season > 1 and len(y) >= 2 * season else 1
    model = ThetaModel(y, period=period, deseasonalize=period > 1)
    results = model.fit()
    seasonal = np.asarray(results._seasonal, np.float64)  # first `period` phases
    method = model.method if len(seasonal) else "none"
    params = {
        "alpha": float(results.params["alpha"]),
        "b0": float(results.params["b0"]),
        "seasonal": seasonal,
        "method": method,
    }
    kind = {"none": "N", "additive": "A", "add": "A"}.get(method, "M")
    return SeriesFit("theta", f"Theta({kind})", params)


def _forecast_theta(params: dict, history, origins, steps) -> np.ndarray:
    """statsmodels' forecast (theta = 2) from each origin: the SES level of
    the deseasonalized rows, half the fitted slope's drift, the phase's
    seasonal factor."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal, method = params["seasonal"], params["method"]
    m = len(seasonal)
    rows = np.arange(len(history))
    flat = history
    if m:
        flat = (
            history / seasonal[rows % m]
            if method.startswith("mul")
            else (history - seasonal[rows % m])
        )
    alpha, b0 = params["alpha"], params["b0"]
    ses = ExponentialSmoothing(
        flat, initialization_method="known", initial_level=flat[0]
    ).fit(smoothing_level=alpha, optimized=False)
    level = np.asarray(ses.level)[origins][:, None]  # (W, 1)
    seen = (origins + 1)[:, None]  # rows observed at each origin
    h = (steps - 1)[None, :].astype(np.float64)
    if alpha > 0:
        h = h + 1 / alpha - (1 - alpha) ** seen / alpha
    mean = level + 0.5 * b0 * h  # (W, T)
    if m:
        phase = seasonal[(seen + steps[None, :] - 1) % m]
        mean = mean * phase if method.startswith("mul") else mean + phase
    return mean


# --- ARIMA -------------------------------------------------------------------


def _fit_arima(y: np.ndarray) -> SeriesFit:
    from components.evaluation import classical

    fitted = classical.fit_model("arima", y, None)
    return SeriesFit("arima", fitted.label, {"fitted": fitted})


def _forecast_arima(params, history, origins, horizon, offset) -> np.ndarray:
    from components.config.schema import WindowSpec
    from components.evaluation import classical

    fitted = params["fitted"]
    spec = WindowSpec(input_width=1, horizon=horizon, offset=offset)
    mean, _ = classical.forecast_from(fitted, history - fitted.mean, origins, spec)
    return mean + fitted.mean
