"""A model ready to train and its fit: seeding, precision, compile, the
compiled epoch and `model.fit` loops, callbacks, checkpoints for resume, and
the hyperparameter search space."""

from components.common.lazy import lazy_surface

_SURFACE = {
    "builder": "builder",
    "build_for_training": "builder",
    "fit": "fit",
    "fit_model": "fit",
    "FitResult": "fit",
    "checkpoint": "checkpoint",
    "CheckpointFolder": "checkpoint",
    "compiled_loop": "compiled_loop",
    "functional_epoch": "functional_epoch",
    "search": "search",
}
__all__ = sorted(_SURFACE)
__getattr__, __dir__ = lazy_surface(__name__, _SURFACE)
