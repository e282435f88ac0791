"""The MLP baseline: flatten the window, then dense layers (the course's reference)."""

import keras
from keras import layers

from components.config.schema import ModelSpec
from components.models.common import forecast_head, window_input


def build_mlp(spec: ModelSpec, input_shape, output_shape) -> keras.Model:
    """(B, L, C) -> flatten -> Dense(units[i], relu)... -> (B, T, K)."""
    inputs = window_input(input_shape)
    x = layers.Flatten(name="flatten")(inputs)  # -> (B, L*C)
    for i, units in enumerate(spec.units):
        x = layers.Dense(units, activation="relu", name=f"dense_{i}")(x)  # -> (B, H)
        if spec.dropout:
            x = layers.Dropout(spec.dropout, name=f"dropout_{i}")(x)
    return keras.Model(inputs, forecast_head(x, output_shape), name="mlp")
