"""Stacked recurrent networks: SimpleRNN, LSTM and GRU share one builder.

Every layer but the last returns its full sequence (B, L, H) so the next layer
can read it; the last returns its final state (B, H), which the head projects
to (B, T, K). Defaults keep Keras' cuDNN conditions for LSTM/GRU on a GPU.
"""

import keras

from components.config.schema import ModelSpec
from components.models.common import (
    forecast_head,
    maybe_layer_norm,
    recurrent_layer,
    window_input,
)


def build_simple_rnn(spec: ModelSpec, input_shape, output_shape) -> keras.Model:
    """Stacked `SimpleRNN`."""
    return _build_stack("simple_rnn", spec, input_shape, output_shape)


def build_lstm(spec: ModelSpec, input_shape, output_shape) -> keras.Model:
    """Stacked `LSTM`."""
    return _build_stack("lstm", spec, input_shape, output_shape)


def build_gru(spec: ModelSpec, input_shape, output_shape) -> keras.Model:
    """Stacked `GRU` (reset_after=True, the cuDNN-compatible variant)."""
    return _build_stack("gru", spec, input_shape, output_shape)


def _build_stack(cell, spec, input_shape, output_shape) -> keras.Model:
    inputs = window_input(input_shape)  # (B, L, C)
    x = inputs
    last = len(spec.units) - 1
    for i, units in enumerate(spec.units):
        layer = recurrent_layer(
            cell, units, spec, f"{cell}_{i}", return_sequences=i < last
        )
        x = layer(x)  # -> (B, L, H) between layers, (B, H) after the last
        x = maybe_layer_norm(x, spec, f"layer_norm_{i}")
    return keras.Model(inputs, forecast_head(x, output_shape), name=cell)
