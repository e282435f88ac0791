"""The linear skip: forecast = linear autoregression on the window + network.

On short, nearly linear series (the gas furnace) a ridge least-squares fit of
the flattened window beats every network trained from scratch: gradient
descent needs about 1,000 epochs to find what one linear solve finds, and the
networks stop long before. With the skip, the linear part starts at that
solve (the `linear` baseline's coefficients, fitted on the training windows)
and trains along; the network's head starts at zero. So training begins at the
linear baseline's forecast and the network learns what it misses.

Shape legend: B batch, L input steps, C input features, T horizon, K targets.
"""

import keras
import numpy as np
from keras import layers

from components.models.window_norm import inner_network, normalize_arrays

SKIP_LAYER = "linear_skip"


def add_linear_skip(network: keras.Model, output_shape: tuple[int, int]) -> keras.Model:
    """The same layers plus Dense(flatten(window)) added to the output, flat
    (no nested model: layers keep their names). The network's last Dense (its
    head) is zeroed so the sum starts as the linear part alone."""
    heads = [layer for layer in network.layers if isinstance(layer, layers.Dense)]
    heads[-1].set_weights([np.zeros_like(w) for w in heads[-1].get_weights()])
    horizon, n_targets = output_shape
    window = network.inputs[0]  # (B, L, C)
    flat = layers.Flatten(dtype="float32", name="flatten_window")(window)
    linear = layers.Dense(horizon * n_targets, dtype="float32", name=SKIP_LAYER)(flat)
    linear = layers.Reshape(output_shape, dtype="float32", name="linear_forecast")(
        linear
    )  # -> (B, T, K)
    total = layers.Add(dtype="float32", name="forecast_plus_linear")(
        [network.outputs[0], linear]
    )
    return keras.Model(window, total, name=network.name)


def fit_linear_skip(model: keras.Model, x: np.ndarray, y: np.ndarray) -> bool:
    """Set the skip to the ridge least-squares fit of y (W, T, K) on the
    windows x (W, L, C), both as the network sees them (after window
    normalization, if any); False (and nothing changed) without a skip."""
    from components.evaluation import fit_linear_baseline

    network = inner_network(model)
    if SKIP_LAYER not in [layer.name for layer in network.layers]:
        return False
    x, y = normalize_arrays(model, x, y)
    coef = fit_linear_baseline(x, y)  # (L*C + 1, T*K), intercept last
    network.get_layer(SKIP_LAYER).set_weights(
        [coef[:-1].astype(np.float32), coef[-1].astype(np.float32)]
    )
    return True
