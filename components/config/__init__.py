"""The experiment schema (pydantic, `extra="forbid"`), its composition from YAML
parts plus dotted overrides, and the project's paths. Validated once, at the
door; every other package trusts it and receives only its own section."""

from components.common.lazy import lazy_surface

_SURFACE = {
    "schema": "schema",
    "ExperimentConfig": "schema",
    "DataSpec": "schema",
    "SplitSpec": "schema",
    "WindowSpec": "schema",
    "ModelSpec": "schema",
    "TrainSpec": "schema",
    "EvaluateSpec": "schema",
    "TrackingSpec": "schema",
    "RetrainSpec": "schema",
    "BacktestSpec": "schema",
    "loading": "loading",
    "load_experiment": "loading",
    "validate_config": "loading",
    "with_settings": "loading",
    "to_yaml": "loading",
    "paths": "paths",
    "project_root": "paths",
    "available_experiments": "paths",
    "reference": "reference",
}
__all__ = sorted(_SURFACE)
__getattr__, __dir__ = lazy_surface(__name__, _SURFACE)
