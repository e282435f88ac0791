"""Pieces shared by every architecture: the input, recurrent layers, the heads.

Shape legend: B batch, L input steps, C input features, H hidden units,
T horizon steps, K targets.
"""

import keras
from keras import layers

from components.common.errors import DataError
from components.config.schema import ModelSpec

CELLS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


def window_input(input_shape: tuple[int, int]) -> keras.KerasTensor:
    """The model input: a window of shape (B, L, C)."""
    return keras.Input(shape=input_shape, name="window")


def recurrent_layer(cell: str, units: int, spec: ModelSpec, name: str, **kwargs):
    """One recurrent layer with the spec's activation and dropouts.

    Keyword arguments (`return_sequences`, `return_state`) pass through.
    """
    return CELLS[cell](
        units,
        activation=spec.activation,
        dropout=spec.dropout,
        recurrent_dropout=spec.recurrent_dropout,
        name=name,
        **kwargs,
    )


def maybe_layer_norm(x, spec: ModelSpec, name: str):
    """LayerNormalization over the feature axis when `model.layer_norm` is on."""
    return layers.LayerNormalization(name=name)(x) if spec.layer_norm else x


def forecast_head(features, output_shape: tuple[int, int]):
    """(B, H) -> Dense -> (B, T, K), kept in float32 under mixed precision."""
    horizon, n_targets = output_shape
    x = layers.Dense(horizon * n_targets, dtype="float32", name="head")(
        features
    )  # -> (B, T*K)
    return layers.Reshape((horizon, n_targets), dtype="float32", name="forecast")(
        x
    )  # -> (B, T, K)


def sequence_head(sequence, n_targets: int):
    """(B, T, H) -> per-step Dense -> (B, T, K), in float32."""
    return layers.Dense(n_targets, dtype="float32", name="forecast")(sequence)


def target_positions(
    features: list[str], targets: list[str], spec: ModelSpec
) -> tuple[int, ...]:
    """Input column of each target, for the settings that read a target's own
    past from the window (`model.window_norm`, `model.skip: shared`); `()`
    when none is set, or when only `auto` settings are and some target is not
    a feature.

    Raises:
        DataError: a target is not among the input features.
    """
    needs = []
    if spec.window_norm not in ("none", "auto"):
        needs.append(f"`model.window_norm: {spec.window_norm}`")
    if spec.skip == "shared":
        needs.append("`model.skip: shared`")
    wants = "auto" in (spec.window_norm, spec.skip)  # uses them when it can
    if not needs and not wants:
        return ()
    missing = [t for t in targets if t not in features]
    if missing and not needs:
        return ()  # `auto` then leaves out the settings that need them
    if missing:
        raise DataError(
            f"{' and '.join(needs)} need every target among the input features "
            f"(`data.features`): {missing} is not; add it to `data.features` or "
            "change the setting."
        )
    return tuple(features.index(t) for t in targets)
