"""One forecaster for one or many series: raw rows in, forecasts in original
units out, through the same validation, preparation and statistics as
training; saved with a type tag and a format version."""

from components.common.lazy import lazy_surface

_SURFACE = {
    "forecaster": "forecaster",
    "Forecaster": "forecaster",
    "panel_forecaster": "panel_forecaster",
    "PanelForecaster": "panel_forecaster",
}
__all__ = sorted(_SURFACE)
__getattr__, __dir__ = lazy_surface(__name__, _SURFACE)
