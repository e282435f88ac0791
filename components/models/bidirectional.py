"""Bidirectional stacks: each layer reads the window forwards and backwards.

With `merge_mode: concat` a layer's output has 2H features; `sum`, `mul` and
`ave` keep H. The window is fully observed history, so reading it backwards
leaks nothing from the future.
"""

import keras
from keras import layers

from components.config.schema import ModelSpec
from components.models.common import (
    forecast_head,
    maybe_layer_norm,
    recurrent_layer,
    window_input,
)


def build_bidirectional(spec: ModelSpec, input_shape, output_shape) -> keras.Model:
    """Stacked `Bidirectional(cell)` layers, then the dense head."""
    inputs = window_input(input_shape)  # (B, L, C)
    x = inputs
    last = len(spec.units) - 1
    for i, units in enumerate(spec.units):
        cell = recurrent_layer(
            spec.cell, units, spec, f"{spec.cell}_{i}", return_sequences=i < last
        )
        x = layers.Bidirectional(cell, merge_mode=spec.merge_mode, name=f"bi_{i}")(
            x
        )  # -> (B, L, 2H | H) between layers, (B, 2H | H) after the last
        x = maybe_layer_norm(x, spec, f"layer_norm_{i}")
    return keras.Model(inputs, forecast_head(x, output_shape), name="bidirectional")
