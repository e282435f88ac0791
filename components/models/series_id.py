"""A learned embedding of each series of a panel (`model.id_embedding: N`).

Per-series scaling takes away each series' level and spread, so series that
behave differently at the same scaled value (one mean-reverts, one trends)
look alike to a network that sees only a short window. Static covariates
tell them apart when the user has them; the series-id embedding learns N
numbers per series when they do not (DeepAR and the TFT do the same).

The series' training index (its position among the panel's training series)
arrives as the last input channel, never scaled
(`preprocess.scale_split(..., id_channel=True)`). `SeriesEmbedding` splits it
off, looks up the series' N numbers and repeats them over the window, so
every architecture reads them as N more static channels; the rest of the
model is built for that wider input.

Shape legend: B batch, L input steps, C input features (the id last), N
embedding size.
"""

import keras
import numpy as np
from keras import layers, ops

SERIES_LAYER = "series_embedding"


@keras.saving.register_keras_serializable(package="rnnflow")
class SeriesEmbedding(layers.Layer):
    """(B, L, C) with the series index in the last channel -> (B, L, C - 1 + N):
    the other channels, then the series' N learned numbers at every step."""

    def __init__(self, n_series: int, size: int, **kwargs):
        super().__init__(**kwargs)
        self.n_series = int(n_series)
        self.size = int(size)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.n_series, self.size),
            initializer=keras.initializers.RandomNormal(stddev=0.1),
            name="embeddings",
        )

    def call(self, window):
        index = ops.cast(window[:, 0, -1], "int32")  # constant over the window
        vectors = ops.take(self.embeddings, index, axis=0)  # -> (B, N)
        steps = ops.zeros_like(window[:, :, :1])  # (B, L, 1), for the broadcast
        repeated = steps + ops.cast(vectors, window.dtype)[:, None, :]  # (B, L, N)
        return ops.concatenate([window[:, :, :-1], repeated], axis=-1)

    def compute_output_shape(self, input_shape):
        batch, length, channels = input_shape
        return (batch, length, channels - 1 + self.size)

    def get_config(self):
        return {**super().get_config(), "n_series": self.n_series, "size": self.size}


def add_series_embedding(
    network: keras.Model, n_series: int, size: int, input_shape: tuple[int, int]
) -> keras.Model:
    """Wrap `network`, built for (L, C - 1 + N), so it takes (L, C) windows whose
    last channel is the series index. The network is nested under its own name."""
    window = keras.Input(shape=input_shape, name="window_with_series")
    embedded = SeriesEmbedding(n_series, size, dtype="float32", name=SERIES_LAYER)(
        window
    )
    return keras.Model(window, network(embedded), name=network.name)


def takes_series_index(model: keras.Model) -> bool:
    """Whether `model`'s last input channel is the series index."""
    return SERIES_LAYER in [layer.name for layer in model.layers]


def embedded_windows(model: keras.Model, x: np.ndarray):
    """(the network inside a series-embedding model, windows `x` as it sees
    them: `SeriesEmbedding` in NumPy), or (model, x) unchanged for a model
    without the embedding: what a linear skip inside is fitted on."""
    if not takes_series_index(model):
        return model, x
    table = model.get_layer(SERIES_LAYER).get_weights()[0]  # (S, N)
    inner = next(item for item in model.layers if isinstance(item, keras.Model))
    vectors = table[np.asarray(x[:, 0, -1]).astype(np.int64)]  # (W, N)
    repeated = np.broadcast_to(vectors[:, None, :], (*x.shape[:2], table.shape[1]))
    return inner, np.concatenate([x[:, :, :-1], repeated.astype(x.dtype)], axis=-1)
