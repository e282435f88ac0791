"""Compile and fit: Adam on MSE, early stopping with best weights, and a guard
that stops a training whose loss turns non-finite or explodes.

Training returns values (history, timings) and never logs: the caller passes
`hooks` (callables `hook(epoch, logs)`) to stream per-epoch numbers wherever it
wants, for example to MLflow or the terminal.
"""

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import keras

from components.common.errors import TrainingError
from components.config.schema import TrainSpec
from components.training import compiled_loop
from components.training.checkpoint import CheckpointFolder, TrainingState

EpochHook = Callable[[int, dict[str, float]], None]

# The divergence guard. Targets are z-scored on the training split, so
# forecasting zero costs an MSE of about 1 and a fresh network a few. A
# training loss above DIVERGENCE_FACTOR x the first epoch's (counted as at
# least 1), or above DIVERGENCE_BOUND whatever the first epoch was (an error of
# 1,000 training standard deviations), has left any useful model behind.
DIVERGENCE_FACTOR = 1e3
DIVERGENCE_BOUND = 1e6


@dataclass(frozen=True)
class FitResult:
    """What one training produced besides the weights.

    Attributes:
        history: per-epoch values, e.g. {"loss": [...], "val_loss": [...]}.
        epochs_trained: epochs actually run (early stopping may end sooner).
        best_epoch: 1-based epoch whose weights the model now holds.
        seconds: wall time of `fit` alone (this process's part when resumed).
        resumed_from_epoch: first epoch this process ran (1-based) when it went
            on from a checkpoint; None for a training from scratch.
        loop: `compiled` or `fit`, the loop that ran.
        xla: whether XLA compiled the training step (`train.xla`).
    """

    history: dict[str, list[float]]
    epochs_trained: int
    best_epoch: int
    seconds: float
    resumed_from_epoch: int | None = None
    loop: str = "fit"
    xla: bool = False


def resolve_precision(precision: str) -> str:
    """`auto` -> `mixed_float16` when TensorFlow sees a GPU, else `float32`."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


@contextlib.contextmanager
def precision_policy(policy: str) -> Iterator[str]:
    """Build (and compile) models under `policy`; restore the global one after.

    Layers take the global dtype policy when they are created, and a model whose
    policy is `mixed_float16` gets loss scaling from `compile` automatically.
    Heads are pinned to float32, so forecasts and the loss stay float32.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)


def compile_model(model: keras.Model, spec: TrainSpec) -> keras.Model:
    """Attach Adam(learning_rate, optional clipping) and the loss: MSE, or
    for a quantile model the pinball loss over its levels."""
    from components.models import quantile_levels
    from components.models.quantiles import PinballLoss

    optimizer = keras.optimizers.Adam(
        spec.learning_rate, clipnorm=spec.clipnorm, clipvalue=spec.clipvalue
    )
    levels = quantile_levels(model)
    model.compile(optimizer=optimizer, loss=PinballLoss(levels) if levels else "mse")
    return model


def fit_model(
    model: keras.Model,
    train_ds,
    val_ds,
    spec: TrainSpec,
    hooks: Sequence[EpochHook] = (),
    checkpoint: CheckpointFolder | None = None,
    resume: TrainingState | None = None,
) -> FitResult:
    """Fit a compiled model; restore the weights of the best monitored epoch.

    `train_ds` / `val_ds` are either `compiled_loop.Windows` (every window in
    memory: the compiled loop, one `tf.function` call per epoch) or tf.data
    datasets (streamed through `model.fit`); both give the same weights.
    The monitor is `val_loss` when `val_ds` is given, else `loss`. With a
    `checkpoint` folder the training state is saved there as epochs end;
    with a `resume` state (read from such a folder) the weights, optimizer,
    history and early stopping's counters are restored first and training goes
    on from the epoch after it. Hooks see the restored epochs replayed, so a
    new MLflow run holds the whole curve. The caller must have built
    `train_ds` to start at the same epoch (`make_dataset(start_epoch=)`).

    Raises:
        TrainingError: the loss became non-finite ("non-finite loss at epoch
            E") or exploded ("loss diverged at epoch E"; see `divergence`).
    """
    monitor = "val_loss" if val_ds is not None else "loss"
    before = resume.history if resume else {}
    best_weights = checkpoint.restore(model, resume) if checkpoint and resume else None
    first = resume.epoch if resume else 0
    for i in range(first):
        for hook in hooks:
            hook(i + 1, {k: values[i] for k, values in before.items()})
    callbacks = [
        keras.callbacks.TerminateOnNaN(),  # mid-epoch, under `fit`
        _HookCallback(hooks),
        _DivergenceGuard(before.get("loss", [])),
    ]
    early = None
    if spec.patience:
        early = _EarlyStopping(monitor, spec.patience, resume, best_weights)
        callbacks.append(early)
    if checkpoint is not None:
        callbacks.append(_SaveEachEpoch(checkpoint, before, early))
    done = resume is not None and (resume.stopped or resume.epoch >= spec.epochs)
    initial_epoch = spec.epochs if done else first
    compiled = isinstance(train_ds, compiled_loop.Windows)
    start = time.perf_counter()
    xla = False
    if compiled:
        history, xla = compiled_loop.run_epochs(
            model,
            train_ds,
            val_ds,
            spec.batch_size,
            spec.epochs,
            initial_epoch,
            keras.callbacks.CallbackList(callbacks, model=model, epochs=spec.epochs),
            spec.xla,
        )
    else:
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=spec.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            shuffle=False,  # windows are shuffled in the pipeline, per split
            verbose=0,
        ).history
    seconds = time.perf_counter() - start
    history = {
        k: [float(v) for v in before.get(k, [])]
        + [float(v) for v in history.get(k, [])]
        for k in {*before, *history}
    }
    losses = history.get("loss", [])
    diverged = divergence(losses or [math.nan])  # none: stopped in epoch 1
    if diverged is not None:
        epoch, what, detail = diverged
        raise TrainingError(
            f"{what} at epoch {epoch} ({detail}): lower `train.learning_rate` (now "
            f"{spec.learning_rate}), set `train.clipnorm`, or check the data for "
            "extreme values."
        )
    watched = history[monitor]
    # EarlyStopping restores the best epoch; without it the last weights stay.
    best_epoch = watched.index(min(watched)) + 1 if spec.patience else len(losses)
    return FitResult(
        history=history,
        epochs_trained=len(losses),
        best_epoch=best_epoch,
        seconds=seconds,
        resumed_from_epoch=first + 1 if resume else None,
        loop="compiled" if compiled else "fit",
        xla=xla,
    )


def divergence(losses: Sequence[float]) -> tuple[int, str, str] | None:
    """The first epoch (1-based) at which a training went wrong, what went
    wrong and the numbers.

    A loss that is non-finite ("non-finite loss"), above `DIVERGENCE_BOUND`,
    or above `DIVERGENCE_FACTOR` x max(first epoch's loss, 1) ("loss
    diverged"). None when every epoch is fine.
    """
    if not losses:
        return None
    limit = min(DIVERGENCE_BOUND, DIVERGENCE_FACTOR * max(losses[0], 1.0))
    for epoch, loss in enumerate(losses, start=1):
        if not math.isfinite(loss):
            return epoch, "non-finite loss", f"loss {loss}"
        if loss > limit:
            return epoch, "loss diverged", (
                f"loss {loss:.3g} above {limit:.3g}: {DIVERGENCE_FACTOR:g} x the "
                f"first epoch's loss, at most {DIVERGENCE_BOUND:g}"
            )
    return None


def use_compiled_loop(
    spec: TrainSpec, sizes: dict[str, int], window, n_inputs: int, n_targets: int
) -> bool:
    """`train.loop`: `compiled` or `fit` as asked; `auto` takes the compiled
    loop when the windows of the training and validation splits (`sizes`:
    rows per split) fit in `compiled_loop.MEMORY_BUDGET_BYTES`."""
    if spec.loop != "auto":
        return spec.loop == "compiled"
    if spec.windows_per_series:  # each epoch draws its windows in the pipeline
        return False
    needed = sum(
        compiled_loop.window_bytes(sizes.get(name, 0), window, n_inputs, n_targets)
        for name in ("train", "val")
    )
    return needed <= compiled_loop.MEMORY_BUDGET_BYTES


def progress_printer(emit: Callable[[str], None], every: int, epochs: int) -> EpochHook:
    """A hook that emits one line every `every` epochs (and at the first)."""

    def hook(epoch: int, logs: dict[str, float]) -> None:
        if every and (epoch == 1 or epoch % every == 0 or epoch == epochs):
            values = "  ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()))
            emit(f"epoch {epoch}/{epochs}  {values}")

    return hook


class LiveProgress:
    """An epoch hook that keeps one terminal line up to date: the epoch, the
    losses and the time left if training runs every epoch (early stopping
    may end it sooner), timed from the second epoch on (the first also
    traces the graph). `close()` ends the line."""

    def __init__(
        self, stream, epochs: int, clock: Callable[[], float] = time.monotonic
    ):
        self._stream, self._epochs, self._clock = stream, epochs, clock
        self._first: tuple[int, float] | None = None  # first epoch here, its end

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        now = self._clock()
        if self._first is None:
            self._first = (epoch, now)
        first, since = self._first
        left = ""
        if epoch > first:
            per_epoch = (now - since) / (epoch - first)
            left = f"  at most {per_epoch * (self._epochs - epoch):.0f} s left"
        values = "  ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items()))
        width = len(str(self._epochs))
        self._stream.write(
            f"\r\x1b[2Kepoch {epoch:>{width}}/{self._epochs}  {values}{left}"
        )
        self._stream.flush()

    def close(self) -> None:
        if self._first is not None:
            self._stream.write("\n")
            self._stream.flush()


class _HookCallback(keras.callbacks.Callback):
    """Calls each hook with the 1-based epoch and plain-float logs."""

    def __init__(self, hooks: Sequence[EpochHook]):
        super().__init__()
        self._hooks = list(hooks)

    def on_epoch_end(self, epoch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items()}
        for hook in self._hooks:
            hook(epoch + 1, values)


class _DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first epoch `divergence` objects to; `fit_model`
    then raises with the epoch and the reason. `before`: the losses of the
    epochs a resumed training already ran."""

    def __init__(self, before: Sequence[float]):
        super().__init__()
        self._losses = [float(v) for v in before]

    def on_epoch_end(self, epoch, logs=None):
        self._losses.append(float((logs or {}).get("loss", math.nan)))
        if divergence(self._losses) is not None:
            self.model.stop_training = True


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping with best-weight restore, able to go on from a
    checkpoint's counters instead of starting over."""

    def __init__(self, monitor, patience, resume: TrainingState | None, best_weights):
        super().__init__(monitor, patience=patience, restore_best_weights=True)
        self._resume = resume
        self._resume_weights = best_weights

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._resume is not None:
            self.best = self._resume.best
            self.best_epoch = self._resume.best_epoch
            self.wait = self._resume.wait
            self.best_weights = self._resume_weights


class _SaveEachEpoch(keras.callbacks.Callback):
    """Saves the training state at the end of epochs (after early stopping has
    looked at it, so its counters and decision are part of the state).

    Every epoch when epochs are slow; when they are fast (the compiled loop
    runs a small GRU epoch in ~20 ms, a save costs ~5 ms) at most once per
    `SAVE_COST_RATIO` x the last save's cost, so saving stays under 2 % of the
    training time. A killed training loses at most that much work (about
    0.25 s for a small model). The first two epochs and the last are always
    saved.
    """

    SAVE_COST_RATIO = 50

    def __init__(self, folder: CheckpointFolder, before, early: _EarlyStopping | None):
        super().__init__()
        self._folder = folder
        self._history = {k: list(v) for k, v in before.items()}
        self._early = early
        self._saves = 0
        self._next_save = 0.0

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(float(value))
        last = self.model.stop_training or epoch + 1 >= self.params.get("epochs", 0)
        if not last and time.monotonic() < self._next_save:
            return
        start = time.perf_counter()
        early = self._early
        state = TrainingState(
            epoch=epoch + 1,
            history=self._history,
            run_id=self._folder.run_id,
            weights="",
            best=None if early is None or early.best is None else float(early.best),
            best_epoch=early.best_epoch if early else 0,
            wait=early.wait if early else 0,
            stopped=bool(self.model.stop_training),
        )
        self._folder.save(
            self.model, state, early.best_weights if early is not None else None
        )
        self._saves += 1
        if self._saves >= 2:  # the first save pays for tracing the snapshot
            cost = time.perf_counter() - start
            self._next_save = time.monotonic() + self.SAVE_COST_RATIO * cost
