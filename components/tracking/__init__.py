"""Everything MLflow: the store, experiments and runs, logging, model logging
(the forecaster as a pyfunc), the registry and its `champion` alias, and the
provenance a run needs to be repeated. Every function takes the tracking URI
and the run id explicitly."""

from components.common.lazy import lazy_surface

_SURFACE = {
    "runs": "runs",
    "packaging": "packaging",
    "log_forecaster": "packaging",
    "load_forecaster": "packaging",
    "registry": "registry",
    "provenance": "provenance",
}
__all__ = sorted(_SURFACE)
__getattr__, __dir__ = lazy_surface(__name__, _SURFACE)
