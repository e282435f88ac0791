"""What every stage shares and nothing else: user-facing errors, redaction of
secrets, seeds that hold across threads, the private library attributes we rely
on, and the lazy package surface. Imports no other rnnflow package."""

from components.common.lazy import lazy_surface

_SURFACE = {
    "errors": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "TrackingError": "errors",
    "redact": "redact",
    "redact_url": "redact",
    "seeds": "seeds",
    "private_api": "private_api",
    "lazy": "lazy",
    "lazy_surface": "lazy",
}
__all__ = sorted(_SURFACE)
__getattr__, __dir__ = lazy_surface(__name__, _SURFACE)
