"""A run's MLflow params: the config as dotted `section.key -> value` pairs
(without the model settings the run's kind ignores), and what the data, the
model and the packages were."""

from typing import Any

import numpy as np

from components.config.schema import ExperimentConfig
from components.models.registry import KINDS_READING
from components.tracking import provenance


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


def run_params(
    config: ExperimentConfig, series, scaled: dict, model, loop: str, xla: bool
) -> dict[str, Any]:
    """What a training run logs as params: the config, the rows (and, for a
    panel, the series) of each split, the columns, missing values, the
    model's size, precision and training loop, and the package versions."""
    params = flatten(config)
    params.update({f"rows.{k}": len(v.inputs) for k, v in scaled.items()})
    if series.layout is not None:
        params["series.total"] = len(series.layout.ids)
        params.update(
            {f"series.{k}": int(np.sum(np.diff(v.bounds) >= config.window.span))
             for k, v in scaled.items()}
        )  # fmt: skip
    params.update(features=series.features, targets=series.targets)
    params["data.frequency_found"] = series.frequency
    params.update({f"missing_values.{c}": n for c, n in series.missing_counts.items()})
    params["model.parameters"] = model.count_params()
    params["precision_policy"] = model.dtype_policy.name
    params["training_loop"] = loop + ("+xla" if xla else "")
    params.update(provenance.package_versions())
    return params
