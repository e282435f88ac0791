"""Model builders behind one registry and one signature.

Every builder is `build(spec, input_shape, output_shape) -> keras.Model`
(uncompiled), taking inputs (B, L, C) and returning (B, T, K) for
input_shape = (L, C) and output_shape = (T, K). `model.skip: linear` adds a
linear autoregression on the window to any of them (`components.models.skip`),
and `model.window_norm` wraps the result so it forecasts each window relative
to its own level (`components.models.window_norm`).
"""

from components.models.registry import get_builder, model_kinds


def build_model(
    spec,
    input_shape: tuple[int, int],
    output_shape: tuple[int, int],
    seed: int | None = None,
    target_positions: tuple[int, ...] = (),
):
    """Build the `spec.kind` architecture for these data shapes.

    With `seed`, the initial weights (and dropout generators) depend on the
    seed alone, whatever other threads do with Python's `random` meanwhile.
    `target_positions` (the input column of each target,
    `common.target_positions`) is needed by `model.window_norm` and
    `model.skip: shared`.
    """
    if seed is None:
        return _build(spec, input_shape, output_shape, target_positions)
    from components.seeds import keras_seeds  # imports Keras

    with keras_seeds(seed):
        return _build(spec, input_shape, output_shape, target_positions)


def _build(spec, input_shape, output_shape, target_positions):
    model = get_builder(spec.kind)(spec, input_shape, output_shape)
    if spec.skip != "none":  # an unresolved `auto` builds the full `linear` map
        from components.models.skip import add_linear_skip

        shared = target_positions if spec.skip == "shared" else ()
        model = add_linear_skip(model, output_shape, shared)
    if spec.window_norm != "none":
        from components.models.window_norm import add_window_norm

        model = add_window_norm(
            model, spec.window_norm, target_positions, input_shape
        )
    return model


def predict(model, x, batch_size: int = 4096):
    """Forecasts (float64) for windows `x` (W, L, C), by calling the model.

    `model.predict` builds and traces a new predict function for every model
    (about 0.25 s on 2 CPU cores, each time a run evaluates or packages);
    calling the layers directly on a few batches costs milliseconds.
    """
    import numpy as np

    if len(x) == 0:
        return np.zeros((0, *model.output.shape[1:]), np.float64)
    parts = [
        np.asarray(model(x[i : i + batch_size], training=False), np.float64)
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts)


__all__ = ["build_model", "model_kinds", "predict"]
