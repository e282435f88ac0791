"""The compiled epoch as a function of the model's state, traced once per
architecture and reused by every model built the same way.

Why: tracing a training step (and letting Grappler optimize the graph) costs
0.5-1.3 s for a small recurrent model on 2 CPU cores, as long as 50-100 of its
epochs on gas furnace. Here the epoch takes the model's, and the optimizer's,
variables as arguments: Keras' `stateless_call` runs the forward pass on their
values and TensorFlow's fused `ResourceApplyAdam` updates them (the same
formula as Keras' Adam: `m += (g - m)(1 - b1)`, `v += (g^2 - v)(1 - b2)`,
`var -= lr_t m / (sqrt(v) + eps)`). The graph captures no state of the model it
was traced with, so the next seed of a compare, the next backtest fold or the
next training on an `rnnflow server` calls the same graph.

Used for plain Adam on MSE, MAE or the pinball loss of a quantile model (what
`training.compile_model` sets up). Anything else (loss scaling under
`mixed_float16`, schedules, weight decay, another loss) goes through Keras'
own `train_step` in `compiled_loop`.

Recurrent layers are unrolled while tracing on a CPU when windows are short:
the per-step `while` loop costs more than the math there (LSTM epoch on gas
furnace 13.8 -> 8.5 ms, GRU 14.2 -> 10.0 ms; bench/README.md). On a GPU they
stay rolled so cuDNN keeps its fused kernels.

With `train.xla` the training step is compiled by XLA (`jit_compile`), rolled.
Compiling takes seconds (LSTM, 2 x 64 units: about 5 s), so `auto` turns it on
only where it was measured to pay: on a CPU, for at least `XLA_MIN_WINDOWS`
training windows, and not for SimpleRNN or Bidirectional layers, which XLA
made slower (20,000 windows of 24 x 8, batch 256: LSTM +18-50 %, GRU +55 %,
MLP +25 %, seq2seq level, SimpleRNN -40 %, bidirectional -30 %).
"""

import contextlib
import json
import threading
from collections import OrderedDict

from components.common import private_api
from components.data.windowing import epoch_order, shuffle_base

# Windows (and horizons) up to this many steps are unrolled on a CPU.
UNROLL_MAX_STEPS = 32
# `train.xla: auto` compiles with XLA from this many training windows up.
XLA_MIN_WINDOWS = 10_000
# Layers XLA made slower on a CPU (bench/README.md).
XLA_SLOWER = ("SimpleRNN", "Bidirectional")
# Traced epochs kept per process (least recently used dropped first).
CACHE_SIZE = 16

_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def supports(model) -> bool:
    """Whether `model` trains here: Adam without extras, MSE or pinball loss,
    float32 weights."""
    import keras

    from components.models.quantiles import PinballLoss

    opt = model.optimizer
    return (
        type(opt) is keras.optimizers.Adam
        and not opt.amsgrad
        and not opt.weight_decay
        and not opt.use_ema
        and not opt.gradient_accumulation_steps
        and opt.global_clipnorm is None
        and not isinstance(
            private_api.learning_rate_setting(opt),
            keras.optimizers.schedules.LearningRateSchedule,
        )
        and (
            isinstance(model.loss, PinballLoss)
            or model.loss in ("mse", "mean_squared_error", "mae", "mean_absolute_error")
        )
        and all(v.dtype == "float32" for v in model.trainable_variables)
    )


def should_unroll(model) -> bool:
    """Unroll recurrent layers: on a CPU, for windows and horizons up to
    `UNROLL_MAX_STEPS` steps (both must be known when the model is built)."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return False
    steps = [model.inputs[0].shape[1], model.outputs[0].shape[1]]
    return all(s is not None and s <= UNROLL_MAX_STEPS for s in steps)


def use_xla(model, setting: str, windows: int) -> bool:
    """`train.xla` resolved for `model` training on `windows` windows."""
    import tensorflow as tf

    if setting != "auto":
        return setting == "on"
    if windows < XLA_MIN_WINDOWS or tf.config.list_physical_devices("GPU"):
        return False
    kinds = private_api.layer_kinds(model)
    return not kinds.intersection(XLA_SLOWER)


@contextlib.contextmanager
def unrolled(model, allowed: bool = True):
    """Trace `model`'s recurrent layers unrolled when `should_unroll` says so;
    put their setting back after (the saved model keeps its own)."""
    import keras

    cells = [
        layer
        for layer in private_api.nested_layers(model)
        if isinstance(layer, keras.layers.RNN)
    ]
    before = [layer.unroll for layer in cells]
    if cells and allowed and should_unroll(model):
        for layer in cells:
            layer.unroll = True
    try:
        yield
    finally:
        for layer, value in zip(cells, before, strict=True):
            layer.unroll = value


def epoch_function(model, train, val, batch_size: int, xla: bool = False):
    """A callable `epoch_step(epoch) -> {"loss", "val_loss"}` training `model`
    (built, compiled, optimizer built) for one epoch on `train`, scoring `val`,
    with the training step compiled by XLA when `xla`. The graph comes from the
    cache when a model of the same architecture was traced before in this
    process."""
    import tensorflow as tf

    opt = model.optimizer
    key = _key(model, batch_size, train.shuffle, val is not None, xla)
    with _lock:
        traced = _cache.get(key)
        if traced is not None:
            _cache.move_to_end(key)
    state = _state(model)
    data = [train.x, train.y] + ([val.x, val.y] if val is not None else [])
    base = tf.constant(shuffle_base(train.seed), tf.int64)
    if traced is None:
        traced = _trace(model, batch_size, train.shuffle, xla, state, data)
        if not _captures_variables(traced):
            with _lock:
                _cache[key] = traced
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)

    def epoch_step(epoch):
        learning_rate = tf.cast(opt.learning_rate, tf.float32)
        return traced(*state, learning_rate, *data, tf.constant(epoch, tf.int64), base)

    return epoch_step


def cached() -> int:
    """How many traced epochs this process holds."""
    return len(_cache)


def clear_cache() -> None:
    """Forget every traced epoch (the next training of each model traces)."""
    with _lock:
        _cache.clear()


def _state(model) -> list:
    """The variables the epoch reads and updates, as `tf.Variable`s: trainable,
    non-trainable (seed states of dropout included), Adam's m and v, and the
    optimizer's step counter."""
    opt = model.optimizer
    trainable = model.trainable_variables
    momentums, velocities = private_api.adam_slots(opt, trainable)
    return [
        [v.value for v in trainable],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in momentums],
        [v.value for v in velocities],
        opt.iterations.value,
    ]


def _key(model, batch_size: int, shuffle: bool, has_val: bool, xla: bool) -> str:
    """What decides the traced graph: the model's config without names of
    initializers or seeds (they set starting values, not the math), the
    variables' shapes, Adam's constants, the batch size, XLA and unrolling."""

    def strip(node):
        if isinstance(node, dict):
            return {
                k: strip(v)
                for k, v in node.items()
                if not (k.endswith("initializer") or k == "seed")
            }
        if isinstance(node, list | tuple):
            return [strip(v) for v in node]
        return node

    opt = model.optimizer
    return json.dumps(
        {
            "model": strip(model.get_config()),
            "variables": [
                [list(v.shape), str(v.dtype)] for v in model.variables
            ],
            "adam": [opt.beta_1, opt.beta_2, opt.epsilon, opt.clipnorm, opt.clipvalue],
            "loss": getattr(model.loss, "levels", model.loss),
            "batch": batch_size,
            "shuffle": shuffle,
            "val": has_val,
            "xla": xla,
            "unroll": should_unroll(model) and not xla,
        },
        sort_keys=True,
        default=repr,
    )


def _captures_variables(traced) -> bool:
    """A graph that captured a variable of the model it was traced with must
    not be handed to another model."""
    import tensorflow as tf

    return any(t.dtype == tf.resource for t in traced.captured_inputs)


def _trace(model, batch_size: int, shuffle: bool, xla: bool, state: list, data: list):
    """Trace the epoch for `model`'s architecture; inputs of any length."""
    import tensorflow as tf

    from components.models.quantiles import PinballLoss, pinball

    opt = model.optimizer
    beta_1, beta_2, epsilon = float(opt.beta_1), float(opt.beta_2), float(opt.epsilon)
    levels = model.loss.levels if isinstance(model.loss, PinballLoss) else None
    absolute = model.loss in ("mae", "mean_absolute_error")

    def batch_loss(y_pred, y):
        """The compiled loss of one batch: MSE or MAE, or the mean pinball loss."""
        if levels is not None:
            return tf.reduce_mean(pinball(y, y_pred, levels))
        if absolute:
            return tf.reduce_mean(tf.abs(y_pred - y))
        return tf.reduce_mean(tf.square(y_pred - y))

    def forward(trainable, non_trainable, x, training):
        """Loss terms of one batch: (mse, regularization or None, new state)."""
        y_pred, non_trainable, losses = model.stateless_call(
            trainable, non_trainable, x, training=training, return_losses=True
        )
        extra = tf.add_n([tf.cast(v, tf.float32) for v in losses]) if losses else None
        return tf.cast(y_pred, tf.float32), extra, non_trainable

    def train_batch(variables, m, v, iterations, learning_rate, x, y):
        weights, non_trainable = variables
        values = [w.read_value() for w in weights]
        with tf.GradientTape() as tape:
            tape.watch(values)
            y_pred, extra, updated = forward(
                values, [s.read_value() for s in non_trainable], x, True
            )
            loss = batch_loss(y_pred, y)
            if extra is not None:
                loss += extra
        grads = private_api.clip_gradients(opt, tape.gradient(loss, values))
        step = tf.cast(iterations.read_value() + 1, tf.float32)
        beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
        for weight, m_slot, v_slot, grad in zip(weights, m, v, grads, strict=True):
            if grad is None:  # not reached by the loss; Keras skips it too
                continue
            tf.raw_ops.ResourceApplyAdam(
                var=weight.handle, m=m_slot.handle, v=v_slot.handle,
                beta1_power=beta_1_power, beta2_power=beta_2_power,
                lr=learning_rate, beta1=beta_1, beta2=beta_2, epsilon=epsilon,
                grad=grad,
            )  # fmt: skip
        iterations.assign_add(1)
        for variable, value in zip(non_trainable, updated, strict=True):
            variable.assign(value)
        return loss

    if xla:  # compiled per batch shape: full batches and the last one
        train_batch = tf.function(train_batch, jit_compile=True, autograph=False)

    def batch_losses(n, step):
        """Sum of `step(b) * rows in batch b` over the batches of `n` rows, in a
        graph loop (no autograph: the graph does not depend on reading this
        file's source)."""

        def body(b, total):
            loss, rows = step(b)
            return b + 1, total + loss * tf.cast(rows, tf.float32)

        count = (n + batch_size - 1) // batch_size
        _, total = tf.while_loop(
            lambda b, _: b < count,
            body,
            (tf.constant(0, tf.int64), tf.constant(0.0)),
            parallel_iterations=1,  # each step reads the weights the last wrote
        )
        return total / tf.cast(n, tf.float32)

    def mean_loss(weights, non_trainable, x, y):
        """Validation loss, batch by batch in time order (as `evaluate`)."""
        values = [w.read_value() for w in weights]
        frozen = [s.read_value() for s in non_trainable]

        def step(b):
            rows = slice(b * batch_size, (b + 1) * batch_size)
            y_pred, extra, _ = forward(values, frozen, x[rows], False)
            loss = batch_loss(y_pred, y[rows])
            return (loss if extra is None else loss + extra), tf.shape(y_pred)[0]

        return batch_losses(tf.shape(x, out_type=tf.int64)[0], step)

    def epoch(weights, non_trainable, m, v, iterations, learning_rate, x, y, *rest):
        *val, epoch_number, base = rest
        n = tf.shape(x, out_type=tf.int64)[0]
        order = tf.range(n)
        if shuffle:  # the order make_dataset gives epoch `epoch_number`
            order = epoch_order(order, base, epoch_number)

        def step(b):
            batch = order[b * batch_size : (b + 1) * batch_size]
            loss = train_batch(
                (weights, non_trainable), m, v, iterations, learning_rate,
                tf.gather(x, batch), tf.gather(y, batch),
            )  # fmt: skip
            return loss, tf.shape(batch)[0]

        logs = {"loss": batch_losses(n, step)}
        if val:
            logs["val_loss"] = mean_loss(weights, non_trainable, *val)
        return logs

    specs = [tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in data]
    scalar = tf.TensorSpec([], tf.int64)
    with unrolled(model, allowed=not xla):
        return tf.function(epoch, autograph=False).get_concrete_function(
            *state, tf.TensorSpec([], tf.float32), *specs, scalar, scalar
        )
