"""Pieces shared by every architecture."""

import keras
from keras import layers


def forecast_head(features, output_shape: tuple[int, int]):
    """Dense projection to (B, T, K), kept in float32 under mixed precision."""
    horizon, n_targets = output_shape
    x = layers.Dense(horizon * n_targets, dtype="float32", name="head")(
        features
    )  # -> (B, T*K)
    return layers.Reshape((horizon, n_targets), dtype="float32", name="forecast")(
        x
    )  # -> (B, T, K)


def window_input(input_shape: tuple[int, int]) -> keras.KerasTensor:
    """The model input: a window of shape (B, L, C)."""
    return keras.Input(shape=input_shape, name="window")
