"""One forecaster for one or many series: raw rows in, forecasts in original
units out, through the same validation, preparation and statistics as
training; saved with a type tag and a format version."""

from components.common.lazy import lazy_surface

_SURFACE = {
    "forecaster": "forecaster",
    "Forecaster": "forecaster",
    "kinds": "kinds",
    "forecaster_for": "kinds",
    "load_saved": "kinds",
    "series": "series",
    "SeriesForecaster": "series",
    "panel": "panel",
    "PanelForecaster": "panel",
    "rows": "rows",
    "pyfunc": "pyfunc",
}
__all__ = sorted(_SURFACE)
__getattr__, __dir__ = lazy_surface(__name__, _SURFACE)
