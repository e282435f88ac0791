"""The linear skip: forecast = linear autoregression on the window + network.

On short, nearly linear series (the gas furnace) a ridge least-squares fit of
the flattened window beats every network trained from scratch: gradient
descent needs about 1,000 epochs to find what one linear solve finds, and the
networks stop long before. With the skip, the linear part starts at that
solve (the `linear` baseline's coefficients, fitted on the training windows)
and trains along; the network's head starts at zero. So training begins at the
linear baseline's forecast and the network learns what it misses.

`model.skip: shared` is the channel-independent variant (DLinear/NLinear, and
what lifted linear models on the long-horizon benchmarks): one map from a
target column's own window (L) to its horizon (T), the same for every target,
fitted by least squares on all targets' windows at once. It has L*T weights
instead of L*C*T*K, so it does not overfit wide tables and long horizons.

Shape legend: B batch, L input steps, C input features, T horizon, K targets.
"""

import keras
import numpy as np
from keras import layers, ops

from components.models.linear import fit_linear_baseline
from components.models.series_id import embedded_windows
from components.models.window_norm import inner_network, normalize_arrays

SKIP_LAYER = "linear_skip"
SHARED_SKIP_LAYER = "shared_linear_skip"


@keras.saving.register_keras_serializable(package="rnnflow")
class SharedLinearSkip(layers.Layer):
    """(B, L, C) -> (B, T, K): each target's own past (input column
    `positions[k]`) through one shared (L -> T) linear map."""

    def __init__(self, positions, horizon: int, **kwargs):
        super().__init__(**kwargs)
        self.positions = [int(p) for p in positions]
        self.horizon = int(horizon)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[1], self.horizon), initializer="zeros", name="kernel"
        )  # (L, T)
        self.bias = self.add_weight(
            shape=(self.horizon,), initializer="zeros", name="bias"
        )

    def call(self, window):
        series = ops.take(window, self.positions, axis=-1)  # -> (B, L, K)
        out = ops.einsum("blk,lt->btk", series, self.kernel)  # -> (B, T, K)
        return out + self.bias[None, :, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon, len(self.positions))

    def get_config(self):
        return {
            **super().get_config(),
            "positions": self.positions,
            "horizon": self.horizon,
        }


def add_linear_skip(
    network: keras.Model, output_shape: tuple[int, int], shared_positions=()
) -> keras.Model:
    """The same layers plus a linear map of the window added to the output,
    flat (no nested model: layers keep their names): Dense(flatten(window)),
    or with `shared_positions` (the input column of each target) the shared
    per-column map. The network's last Dense (its head) is zeroed so the sum
    starts as the linear part alone; a quantile network's levels all move
    with the linear part, so its median starts at the least-squares fit."""
    heads = [layer for layer in network.layers if isinstance(layer, layers.Dense)]
    heads[-1].set_weights([np.zeros_like(w) for w in heads[-1].get_weights()])
    horizon, n_targets = output_shape
    window = network.inputs[0]  # (B, L, C)
    if shared_positions:
        linear = SharedLinearSkip(
            shared_positions, horizon, dtype="float32", name=SHARED_SKIP_LAYER
        )(window)  # -> (B, T, K)
    else:
        flat = layers.Flatten(dtype="float32", name="flatten_window")(window)
        linear = layers.Dense(
            horizon * n_targets, dtype="float32", name=SKIP_LAYER
        )(flat)
        linear = layers.Reshape(
            output_shape, dtype="float32", name="linear_forecast"
        )(linear)  # -> (B, T, K)
    if len(network.outputs[0].shape) == 4:  # quantiles: shift every level
        linear = layers.Reshape(
            (*output_shape, 1), dtype="float32", name="linear_per_level"
        )(linear)  # -> (B, T, K, 1)
    total = layers.Add(dtype="float32", name="forecast_plus_linear")(
        [network.outputs[0], linear]
    )
    return keras.Model(window, total, name=network.name)


def fit_linear_skip(model: keras.Model, x: np.ndarray, y: np.ndarray) -> bool:
    """Set the skip to the ridge least-squares fit of y (W, T, K) on the
    windows x (W, L, C), both as the network sees them (after window
    normalization, if any); False (and nothing changed) without a skip."""
    model, x = embedded_windows(model, x)
    network = inner_network(model)
    names = [layer.name for layer in network.layers]
    if SKIP_LAYER not in names and SHARED_SKIP_LAYER not in names:
        return False
    x, y = normalize_arrays(model, x, y)
    if SHARED_SKIP_LAYER in names:
        layer = network.get_layer(SHARED_SKIP_LAYER)
        coef = fit_shared_linear(x, y, layer.positions)  # (L + 1, T)
    else:
        layer = network.get_layer(SKIP_LAYER)
        coef = fit_linear_baseline(x, y)  # (L*C + 1, T*K), intercept last
    layer.set_weights([coef[:-1].astype(np.float32), coef[-1].astype(np.float32)])
    return True


def fit_shared_linear(x: np.ndarray, y: np.ndarray, positions) -> np.ndarray:
    """Ridge least squares of every target's horizon (T) on its own window
    (L), one map for all targets: windows x (W, L, C), targets y (W, T, K)
    -> coefficients (L + 1, T), the intercept last."""
    series = np.asarray(x, np.float64)[:, :, list(positions)]  # (W, L, K)
    inputs = np.moveaxis(series, 2, 1).reshape(-1, x.shape[1], 1)  # (W*K, L, 1)
    outputs = np.moveaxis(np.asarray(y, np.float64), 2, 1).reshape(-1, y.shape[1], 1)
    return fit_linear_baseline(inputs, outputs)


def predict_shared_linear(coef: np.ndarray, x: np.ndarray, positions) -> np.ndarray:
    """(W, L, C) -> (W, T, K) with coefficients from `fit_shared_linear`:
    what `SharedLinearSkip` computes, in NumPy."""
    series = np.asarray(x, np.float64)[:, :, list(positions)]  # (W, L, K)
    return np.einsum("wlk,lt->wtk", series, coef[:-1]) + coef[-1][None, :, None]
