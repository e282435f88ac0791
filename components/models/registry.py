"""Names of model kinds and where their builders live.

Kept free of TensorFlow so the config can validate `model.kind` (and the CLI can
list kinds) without importing Keras. Adding an architecture is one module with a
`build(spec, input_shape, output_shape)` function plus one line here.
"""

import importlib
from collections.abc import Callable

BUILDERS: dict[str, str] = {
    "mlp": "components.models.mlp:build_mlp",
    "simple_rnn": "components.models.recurrent:build_simple_rnn",
    "lstm": "components.models.recurrent:build_lstm",
    "gru": "components.models.recurrent:build_gru",
}


def model_kinds() -> list[str]:
    """All registered `model.kind` values, sorted."""
    return sorted(BUILDERS)


def get_builder(kind: str) -> Callable:
    """Return the builder for `kind`; raise ValueError listing valid kinds."""
    if kind not in BUILDERS:
        raise ValueError(
            f"Received an invalid value for `model.kind`, expected one of "
            f"{model_kinds()}, got {kind!r}."
        )
    module_name, func_name = BUILDERS[kind].split(":")
    return getattr(importlib.import_module(module_name), func_name)
