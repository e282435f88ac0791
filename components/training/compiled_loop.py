"""The compiled training loop: every window of a split held as one tensor and a
whole epoch (shuffle, gather, every gradient step, validation) run by one
`tf.function` call.

Why: on the series people train on every day, `model.fit`'s cost is per step
and per epoch, not math. Measured on gas furnace (186 training windows,
batch 32, 200 epochs, 2 CPU cores): GRU 33 s with `fit` over the tf.data
pipeline, 3.7 s here; MLP, LSTM, SimpleRNN, bidirectional and seq2seq 3-8x
faster too (bench/train_speed.py).

Same math as `fit`, and the window order of `make_dataset` for the same
seed and epoch, so the weights match `fit`'s within float rounding (tested).
Plain Adam on MSE (every rnnflow model) runs `functional_epoch`: one graph per
architecture and process, reused by later models; anything else runs Keras'
own `train_step` / `test_step` (loss scaling under mixed_float16 included),
traced per model. The epochs are driven through the same Keras callbacks
(early stopping with best weights, per-epoch hooks, checkpoints); batch-level
callbacks are not called.
"""

from dataclasses import dataclass

import numpy as np

from components.common import private_api
from components.config.schema import WindowSpec
from components.data.windowing import (
    epoch_order,
    make_windows,
    shuffle_base,
    window_starts,
)
from components.training import functional_epoch as functional

# Windows of a split materialized beyond this go through the streaming
# tf.data pipeline and `fit` instead (`train.loop: auto`).
MEMORY_BUDGET_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Windows:
    """Every window of one split as tensors, and how to order them per epoch.

    Attributes:
        x: (W, L, C) inputs; y: (W, T, K) targets.
        shuffle: reorder every epoch (training) or keep time order.
        seed: the shuffle seed, as given to `make_dataset`.
    """

    x: object
    y: object
    shuffle: bool = False
    seed: int | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


def window_bytes(n_rows: int, window: WindowSpec, n_inputs: int, n_targets: int) -> int:
    """Memory the windows of a split of `n_rows` rows take when materialized."""
    count = len(window_starts(n_rows, window))
    return 4 * count * (window.input_width * n_inputs + window.horizon * n_targets)


def materialize(
    inputs: np.ndarray,
    targets: np.ndarray,
    window: WindowSpec,
    shuffle: bool = False,
    seed: int | None = None,
    bounds: np.ndarray | None = None,
) -> Windows:
    """All windows of one split as float32 tensors (`make_windows`, on device)."""
    import tensorflow as tf

    x, y = make_windows(inputs, targets, window, bounds)
    return Windows(
        tf.constant(x, tf.float32), tf.constant(y, tf.float32), shuffle, seed
    )


def run_epochs(
    model,
    train: Windows,
    val: Windows | None,
    batch_size: int,
    epochs: int,
    initial_epoch: int,
    callbacks,
    xla: str = "off",
) -> tuple[dict[str, list[float]], bool]:
    """Train epochs `initial_epoch + 1 .. epochs` with one compiled call each,
    calling `callbacks` (a `keras.callbacks.CallbackList`) like `fit` does per
    epoch; return this call's history and whether XLA compiled the step
    (`xla`: `train.xla`)."""
    _build(model, train.x[:1], train.y[:1])
    compiled_by_xla = False
    if functional.supports(model):
        compiled_by_xla = functional.use_xla(model, xla, len(train))
        epoch_step = functional.epoch_function(
            model, train, val, batch_size, compiled_by_xla
        )
    else:
        epoch_step = _keras_epoch(model, train, val, batch_size)
    history: dict[str, list[float]] = {}
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        logs = {k: float(v) for k, v in epoch_step(np.int64(epoch + 1)).items()}
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training or not np.isfinite(logs["loss"]):
            break
    callbacks.on_train_end()
    return history, compiled_by_xla


def _keras_epoch(model, train: Windows, val: Windows | None, batch_size: int):
    """One `tf.function` running a whole epoch through Keras' own `train_step`
    (any optimizer, loss scaling under `mixed_float16`); traced per model.
    Returns {"loss", "val_loss"}."""
    import tensorflow as tf

    x, y = train.x, train.y
    n = len(train)
    n_batches = -(-n // batch_size)
    base = tf.constant(shuffle_base(train.seed), tf.int64)

    def reset():
        for metric in model.metrics:
            metric.reset_state()

    @tf.function
    def epoch_step(epoch):
        order = tf.range(n, dtype=tf.int64)
        if train.shuffle:  # the order make_dataset gives epoch `epoch`
            order = epoch_order(order, base, epoch)
        reset()
        for b in tf.range(n_batches):
            batch = order[b * batch_size : (b + 1) * batch_size]
            model.train_step((tf.gather(x, batch), tf.gather(y, batch)))
        logs = {"loss": model.get_metrics_result()["loss"]}
        if val is not None:
            reset()
            for b in tf.range(-(-len(val) // batch_size)):
                rows = slice(b * batch_size, (b + 1) * batch_size)
                model.test_step((val.x[rows], val.y[rows]))
            logs["val_loss"] = model.get_metrics_result()["loss"]
        return logs

    with functional.unrolled(model):
        return epoch_step.get_concrete_function(tf.TensorSpec([], tf.int64))


def _build(model, x, y) -> None:
    """Create the compiled loss, metrics and optimizer variables before tracing
    (a `tf.function` may not create variables after its first trace)."""
    private_api.symbolic_build(model, x, y)  # what `fit` does first, too
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
