"""Model builders behind one registry and one signature.

Every builder is `build(spec, input_shape, output_shape) -> keras.Model`
(uncompiled), taking inputs (B, L, C) and returning (B, T, K) for
input_shape = (L, C) and output_shape = (T, K). `model.quantiles` asks the
builder for Q outputs per step and target and puts a non-crossing quantile
head on them, (B, T, K, Q) (`components.models.quantiles`). `model.skip: linear` adds a
linear autoregression on the window to any of them (`components.models.skip`),
and `model.window_norm` wraps the result so it forecasts each window relative
to its own level (`components.models.window_norm`). `model.id_embedding` puts
a learned embedding of each panel series in front of all of that
(`components.models.series_id`).
"""

from components.models.registry import get_builder, model_kinds


def build_model(
    spec,
    input_shape: tuple[int, int],
    output_shape: tuple[int, int],
    seed: int | None = None,
    target_positions: tuple[int, ...] = (),
    n_series: int = 0,
):
    """Build the `spec.kind` architecture for these data shapes.

    With `seed`, the initial weights (and dropout generators) depend on the
    seed alone, whatever other threads do with Python's `random` meanwhile.
    `target_positions` (the input column of each target,
    `common.target_positions`) is needed by `model.window_norm` and
    `model.skip: shared`. `n_series`: the panel's training series, whose
    index is the last input channel under `model.id_embedding`.
    """
    if seed is None:
        return _with_series(spec, input_shape, output_shape, target_positions, n_series)
    from components.common.seeds import keras_seeds  # imports Keras

    with keras_seeds(seed):
        return _with_series(spec, input_shape, output_shape, target_positions, n_series)


def _with_series(spec, input_shape, output_shape, target_positions, n_series):
    if not spec.id_embedding:
        return _build(spec, input_shape, output_shape, target_positions)
    from components.models.series_id import add_series_embedding

    if n_series < 1:
        raise ValueError(
            f"Received an invalid value for argument `n_series`, expected the "
            f"number of training series for `model.id_embedding`, got {n_series!r}."
        )
    length, channels = input_shape
    wider = (length, channels - 1 + spec.id_embedding)
    network = _build(spec, wider, output_shape, target_positions)
    return add_series_embedding(network, n_series, spec.id_embedding, input_shape)


def _build(spec, input_shape, output_shape, target_positions):
    if spec.quantiles:  # Q outputs per step and target, read by a quantile head
        from components.models.quantiles import add_quantile_head

        levels = head_levels(spec.quantiles)
        horizon, n_targets = output_shape
        model = get_builder(spec.kind)(
            spec, input_shape, (horizon, n_targets * len(levels))
        )
        model = add_quantile_head(model, levels, n_targets)
    else:
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


def head_levels(quantiles) -> list[float]:
    """The levels a head forecasts: the configured ones plus the median."""
    return sorted({float(q) for q in quantiles} | {0.5})


def quantile_levels(model) -> list[float] | None:
    """The levels of a quantile model's head (`quantiles.QuantileHead`), or
    None for a point model."""
    from components.common.private_api import nested_layers

    for layer in nested_layers(model):
        if type(layer).__name__ == "QuantileHead":
            return list(layer.levels)
    return None


def point_of(forecasts, levels: list[float] | None):
    """The point forecast (W, T, K): the median of quantile forecasts
    (W, T, K, Q), or the forecasts themselves for a point model."""
    return forecasts if levels is None else forecasts[..., levels.index(0.5)]


def predict(model, x, batch_size: int = 4096):
    """Point forecasts (W, T, K) for windows `x` (W, L, C): a quantile
    model's median."""
    return point_of(predict_all(model, x, batch_size), quantile_levels(model))


def predict_all(model, x, batch_size: int = 4096):
    """What the model outputs (float64) for windows `x` (W, L, C): (W, T, K),
    or (W, T, K, Q) for a quantile model, by calling the model.

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


__all__ = [
    "build_model",
    "head_levels",
    "model_kinds",
    "point_of",
    "predict",
    "predict_all",
    "quantile_levels",
]
