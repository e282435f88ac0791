"""A config as MLflow params: dotted `section.key -> value` pairs, without the
model settings the run's kind ignores."""

from typing import Any

from components.config.schema import ExperimentConfig
from components.models.registry import KINDS_READING


def flatten(config: ExperimentConfig, for_kind: bool = True) -> dict[str, Any]:
    """Dotted `section.key -> value` pairs, as MLflow params (URLs redacted).
    With `for_kind`, without the model settings `model.kind` ignores (a GRU
    run shows no `model.merge_mode`); `config.yaml` keeps them all."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else key, sub)
        else:
            out[prefix] = value

    walk("", config.model_dump(mode="json"))  # URLs redacted
    if for_kind:
        for key, kinds in KINDS_READING.items():
            if config.model.kind not in kinds:
                out.pop(key)
    return out
