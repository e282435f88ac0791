"""How good a forecast is: metrics in both units, the references every network
must beat (persistence, seasonal naive, linear AR, ETS, ARIMA), intervals and
their calibration, guard rails, the leaderboard, rolling-origin backtests, the
retrain gate and the plots. Never imports serving or tracking."""

from components.common.lazy import lazy_surface

_SURFACE = {
    "evaluate": "evaluate",
    "Evaluation": "evaluate",
    "evaluate_on_test": "evaluate",
    "metrics": "metrics",
    "panel_metrics": "panel_metrics",
    "classical": "classical",
    "intervals": "intervals",
    "Calibration": "intervals",
    "quality": "quality",
    "leaderboard": "leaderboard",
    "build_leaderboard": "leaderboard",
    "gate": "gate",
    "plots": "plots",
    "backtest": "backtest",
}
__all__ = sorted(_SURFACE)
__getattr__, __dir__ = lazy_surface(__name__, _SURFACE)
