"""Names of model kinds and where their builders live.

Kept free of TensorFlow so the config can validate `model.kind` (and the CLI can
list kinds) without importing Keras. Adding an architecture is one module with a
`build(spec, input_shape, output_shape)` function plus one line here.
"""

import importlib
from collections.abc import Callable

from components.common.errors import invalid_value

BUILDERS: dict[str, str] = {
    "mlp": "components.models.mlp:build_mlp",
    "simple_rnn": "components.models.recurrent:build_simple_rnn",
    "lstm": "components.models.recurrent:build_lstm",
    "gru": "components.models.recurrent:build_gru",
    "bidirectional": "components.models.bidirectional:build_bidirectional",
    "seq2seq": "components.models.seq2seq:build_seq2seq",
}


# Model settings only some kinds read; the others ignore them (a GRU run's
# MLflow params show no `model.merge_mode`).
_RECURRENT = ("simple_rnn", "lstm", "gru", "bidirectional", "seq2seq")
KINDS_READING = {
    "model.cell": ("bidirectional", "seq2seq"),
    "model.merge_mode": ("bidirectional",),
    "model.attention": ("seq2seq",),
    "model.recurrent_dropout": _RECURRENT,
    "model.layer_norm": _RECURRENT,
    "model.activation": _RECURRENT,
}


def model_kinds() -> list[str]:
    """All registered `model.kind` values, sorted."""
    return sorted(BUILDERS)


def get_builder(kind: str) -> Callable:
    """Return the builder for `kind`; raise ValueError listing valid kinds."""
    if kind not in BUILDERS:
        raise ValueError(invalid_value("model.kind", f"one of {model_kinds()}", kind))
    module_name, func_name = BUILDERS[kind].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def cudnn_blockers(spec) -> list[str]:
    """Options in `spec` that keep LSTM/GRU off the fused cuDNN kernel on a GPU.

    Keras uses cuDNN only with default activations, no recurrent dropout, no
    unrolling and biases on (GRU also needs reset_after=True, which we keep).
    """
    cell = spec.kind if spec.kind in ("lstm", "gru", "simple_rnn") else spec.cell
    if spec.kind == "mlp" or cell == "simple_rnn":
        return []
    blockers = []
    if spec.recurrent_dropout:
        blockers.append(f"model.recurrent_dropout={spec.recurrent_dropout}")
    if spec.activation != "tanh":
        blockers.append(f"model.activation={spec.activation}")
    return blockers
