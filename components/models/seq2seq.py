"""Encoder-decoder: the encoder reads the window, the decoder unrolls the horizon.

The encoder's final state starts a decoder that runs T steps, one per horizon
step, and emits one forecast per step. Each decoder step reads the encoder's
final hidden state plus a one-hot of its own position in the horizon. With
`model.attention` the decoder also attends over every encoder output: `dot` is
Luong-style (`keras.layers.Attention`), `additive` is Bahdanau-style
(`keras.layers.AdditiveAttention`).
"""

import keras
from keras import layers

from components.config.schema import ModelSpec
from components.models.common import (
    maybe_layer_norm,
    recurrent_layer,
    sequence_head,
    window_input,
)
from components.models.layers import StepEncoding

ATTENTION = {"dot": layers.Attention, "additive": layers.AdditiveAttention}


def build_seq2seq(spec: ModelSpec, input_shape, output_shape) -> keras.Model:
    """Stacked encoder (`spec.units`), one decoder layer of `units[-1]`."""
    horizon, n_targets = output_shape
    inputs = window_input(input_shape)  # (B, L, C)
    encoded, states = _encode(inputs, spec)  # (B, L, H), [(B, H), ...]
    hidden = spec.units[-1]
    repeated = layers.RepeatVector(horizon, name="repeat_state")(states[0])  # (B, T, H)
    position = StepEncoding(horizon, name="step_position")(states[0])  # (B, T, T)
    steps = layers.Concatenate(name="decoder_inputs")(
        [repeated, position]
    )  # (B, T, H+T)
    decoder = recurrent_layer(spec.cell, hidden, spec, "decoder", return_sequences=True)
    decoded = decoder(steps, initial_state=states)  # -> (B, T, H)
    if spec.attention != "none":
        context = ATTENTION[spec.attention](name="attention")(
            [decoded, encoded]
        )  # query (B, T, H) over values (B, L, H) -> (B, T, H)
        decoded = layers.Concatenate(name="with_context")(
            [decoded, context]
        )  # (B, T, 2H)
    return keras.Model(inputs, sequence_head(decoded, n_targets), name="seq2seq")


def _encode(inputs, spec: ModelSpec):
    x = inputs
    last = len(spec.units) - 1
    for i, units in enumerate(spec.units):
        layer = recurrent_layer(
            spec.cell,
            units,
            spec,
            f"encoder_{i}",
            return_sequences=True,
            return_state=i == last,
        )
        if i < last:
            x = maybe_layer_norm(layer(x), spec, f"layer_norm_{i}")  # (B, L, H)
        else:
            x, *states = layer(x)  # (B, L, H), then h (and c for an LSTM)
    return x, states
