"""Window normalization (`model.window_norm`): forecast each window relative to
its own level, so a series that drifts out of its training range still looks
familiar to the network.

Z-scores fitted on the training split stop helping once a series leaves that
range (a stock index, a trending demand): the network then sees inputs it was
never trained on, and it loses to persistence. Two remedies from the
long-horizon literature, both inside the model so the saved `.keras` file is
the whole forecaster:

- `last` (NLinear, Zeng et al. 2023): subtract each window's last value of a
  target series from that series in the window, add it back to the forecast.
  A network whose output is zero is then persistence.
- `revin` (reversible instance normalization, Kim et al. 2022): subtract each
  window's mean and divide by its standard deviation, undo both on the
  forecast.

Only the input columns that are targets are shifted: other features
(covariates, calendar columns) keep their meaning. Every target must
therefore also be an input feature (`common.target_positions`).

Shape legend: B batch, L input steps, C input features, T horizon, K targets.
"""

import keras
import numpy as np
from keras import ops

MODES = ("none", "last", "revin")
NORM_LAYER = "window_norm"
DENORM_LAYER = "window_denorm"
_EPS = 1e-5


@keras.saving.register_keras_serializable(package="rnnflow")
class WindowNormalization(keras.layers.Layer):
    """(B, L, C) -> (window with its target columns normalized (B, L, C),
    loc (B, 1, K), scale (B, 1, K))."""

    def __init__(self, mode: str, positions, n_features: int, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES[1:] or not positions:
            raise ValueError(
                f"Received an invalid value for argument `mode`/`positions`, "
                f"expected one of {MODES[1:]} and at least one position, got "
                f"{mode!r}, {positions!r}."
            )
        self.mode = mode
        self.positions = [int(p) for p in positions]
        self.n_features = int(n_features)
        scatter = np.zeros((len(self.positions), self.n_features), "float32")
        scatter[np.arange(len(self.positions)), self.positions] = 1.0
        self._scatter = scatter  # (K, C): series k -> input column positions[k]

    def call(self, window):
        series = ops.take(window, self.positions, axis=-1)  # -> (B, L, K)
        if self.mode == "last":
            loc = series[:, -1:, :]  # -> (B, 1, K)
            scale = ops.ones_like(loc)
        else:
            loc = ops.mean(series, axis=1, keepdims=True)
            scale = ops.sqrt(ops.var(series, axis=1, keepdims=True) + _EPS)
        normalized = (series - loc) / scale
        scatter = ops.cast(self._scatter, window.dtype)
        shifted = window + ops.matmul(normalized - series, scatter)  # -> (B, L, C)
        return shifted, loc, scale

    def compute_output_shape(self, input_shape):
        stats = (input_shape[0], 1, len(self.positions))
        return input_shape, stats, stats

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "positions": self.positions,
            "n_features": self.n_features,
        }


@keras.saving.register_keras_serializable(package="rnnflow")
class WindowDenormalization(keras.layers.Layer):
    """(forecast (B, T, K), loc (B, 1, K), scale (B, 1, K)) -> forecast * scale
    + loc: the inverse of `WindowNormalization` on the forecast (on every
    level of a quantile forecast (B, T, K, Q))."""

    def call(self, inputs):
        forecast, loc, scale = inputs
        if len(forecast.shape) == 4:
            loc, scale = ops.expand_dims(loc, -1), ops.expand_dims(scale, -1)
        return forecast * ops.cast(scale, forecast.dtype) + ops.cast(
            loc, forecast.dtype
        )

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def add_window_norm(
    network: keras.Model, mode: str, positions, input_shape: tuple[int, int]
) -> keras.Model:
    """Wrap `network` (B, L, C) -> (B, T, K): it sees normalized windows and
    its forecast is mapped back. The network is nested under its own name."""
    window = keras.Input(shape=input_shape, name="window")
    norm = WindowNormalization(
        mode, positions, input_shape[1], dtype="float32", name=NORM_LAYER
    )
    shifted, loc, scale = norm(window)
    forecast = network(shifted)  # -> (B, T, K), relative to each window
    total = WindowDenormalization(dtype="float32", name=DENORM_LAYER)(
        [forecast, loc, scale]
    )
    return keras.Model(window, total, name=network.name)


def inner_network(model: keras.Model) -> keras.Model:
    """The network inside a window-normalized model, or the model itself."""
    names = [layer.name for layer in model.layers]
    if NORM_LAYER not in names:
        return model
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def normalize_arrays(
    model: keras.Model, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Training windows x (W, L, C) and targets y (W, T, K) as the inner
    network sees and forecasts them (unchanged without window norm): what a
    linear skip inside it is fitted on."""
    if NORM_LAYER not in [layer.name for layer in model.layers]:
        return x, y
    shifted, normalized_y, _, _ = apply_norm(model.get_layer(NORM_LAYER), x, y)
    return shifted, normalized_y


def apply_norm(layer: WindowNormalization, x: np.ndarray, y: np.ndarray):
    """`layer` on windows x (W, L, C) and targets y (W, T, K), in NumPy:
    (shifted x, normalized y, loc (W, 1, K), scale (W, 1, K)), float64."""
    shifted, loc, scale = (
        np.asarray(a, np.float64) for a in layer(np.asarray(x, np.float32))
    )
    return shifted, (np.asarray(y, np.float64) - loc) / scale, loc, scale
