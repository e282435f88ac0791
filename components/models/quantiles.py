"""Quantile forecasts (`model.quantiles`): a head that cannot cross, and the
pinball loss it trains on.

Any architecture becomes a quantile forecaster by asking it for Q outputs per
target and step instead of one: `QuantileHead` reads them as the median and
the gaps between neighbouring quantiles. The gaps go through a softplus, so
they are positive, and are summed outward from the median; every quantile is
therefore above the one below it for any weights and inputs (no sorting
afterwards, which would hand the gradient of one quantile to another).

The median (0.5, always among the head's levels) is the point forecast every
metric, baseline comparison and leaderboard uses. Keras ships no pinball
loss; `PinballLoss` is written with `keras.ops`, so it runs in Keras' own
`train_step` and in the compiled epoch (`functional_epoch`) alike.

Shape legend: B batch, T horizon, K targets, Q quantile levels.
"""

import keras
from keras import ops

HEAD_LAYER = "quantile_head"


@keras.saving.register_keras_serializable(package="rnnflow")
class QuantileHead(keras.layers.Layer):
    """(B, T, K * Q) raw outputs -> (B, T, K, Q) quantiles, increasing in Q.

    Output q of target k is column k * Q + q. Column `median` (the index of
    0.5 in `levels`) is the median itself; the others are gaps, made positive
    by a softplus and added up from the median outward.
    """

    def __init__(self, levels, n_targets: int, **kwargs):
        super().__init__(**kwargs)
        self.levels = [float(q) for q in levels]
        if 0.5 not in self.levels or self.levels != sorted(set(self.levels)):
            raise ValueError(
                "Received an invalid value for argument `levels`, expected "
                f"increasing levels that include 0.5, got {levels!r}."
            )
        self.n_targets = int(n_targets)
        self.median = self.levels.index(0.5)

    def call(self, raw):
        q, m = len(self.levels), self.median
        horizon = ops.shape(raw)[1]
        values = ops.reshape(raw, (-1, horizon, self.n_targets, q))  # (B, T, K, Q)
        center = values[..., m : m + 1]  # (B, T, K, 1)
        parts = [center]
        if m + 1 < q:  # above the median: median + running sum of gaps
            parts.append(center + ops.cumsum(ops.softplus(values[..., m + 1 :]), -1))
        if m > 0:  # below: median - running sum of gaps, counted downward
            gaps = ops.flip(ops.softplus(values[..., :m]), -1)
            parts.insert(0, center - ops.flip(ops.cumsum(gaps, -1), -1))
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else center

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.n_targets, len(self.levels))

    def get_config(self):
        return {
            **super().get_config(),
            "levels": self.levels,
            "n_targets": self.n_targets,
        }


@keras.saving.register_keras_serializable(package="rnnflow")
class PinballLoss(keras.losses.Loss):
    """Mean pinball (quantile) loss of (B, T, K, Q) quantiles against
    (B, T, K) targets, averaged over levels: for level q and error
    e = y - forecast, max(q e, (q - 1) e). Minimized by the true q-quantile;
    at 0.5 it is half the absolute error."""

    def __init__(self, levels, name: str = "pinball", **kwargs):
        super().__init__(name=name, **kwargs)
        self.levels = [float(q) for q in levels]

    def call(self, y_true, y_pred):
        return pinball(y_true, y_pred, self.levels)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


def pinball(y_true, y_pred, levels):
    """Per-sample pinball loss, (B, T, K) and (B, T, K, Q) -> (B,), with
    `keras.ops` (also inside a traced TensorFlow function)."""
    q = ops.cast(ops.convert_to_tensor(levels), y_pred.dtype)  # (Q,)
    error = ops.expand_dims(ops.cast(y_true, y_pred.dtype), -1) - y_pred
    loss = ops.maximum(q * error, (q - 1.0) * error)  # (B, T, K, Q)
    return ops.mean(ops.reshape(loss, (ops.shape(loss)[0], -1)), axis=-1)


def add_quantile_head(network: keras.Model, levels, n_targets: int) -> keras.Model:
    """`network` (B, L, C) -> (B, T, K * Q) with a `QuantileHead` on its
    output, flat (its layers keep their names)."""
    head = QuantileHead(levels, n_targets, dtype="float32", name=HEAD_LAYER)
    return keras.Model(network.inputs, head(network.outputs[0]), name=network.name)
