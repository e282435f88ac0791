"""Model builders behind one registry and one signature.

Every builder is `build(spec, input_shape, output_shape) -> keras.Model`
(uncompiled), taking inputs (B, L, C) and returning (B, T, K) for
input_shape = (L, C) and output_shape = (T, K).
"""

from components.models.registry import get_builder, model_kinds


def build_model(spec, input_shape: tuple[int, int], output_shape: tuple[int, int]):
    """Build the `spec.kind` architecture for these data shapes."""
    return get_builder(spec.kind)(spec, input_shape, output_shape)


__all__ = ["build_model", "model_kinds"]
