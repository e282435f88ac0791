"""Compile and fit: Adam on MSE, early stopping with best weights, NaN stop.

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

from components.config import TrainSpec
from components.errors import TrainingError

EpochHook = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class FitResult:
    """What one training produced besides the weights.

    Attributes:
        history: per-epoch values, e.g. {"loss": [...], "val_loss": [...]}.
        epochs_trained: epochs actually run (early stopping may end sooner).
        best_epoch: 1-based epoch whose weights the model now holds.
        seconds: wall time of `fit` alone.
    """

    history: dict[str, list[float]]
    epochs_trained: int
    best_epoch: int
    seconds: float


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
    """Attach Adam(learning_rate, optional clipping) and MSE loss."""
    optimizer = keras.optimizers.Adam(
        spec.learning_rate, clipnorm=spec.clipnorm, clipvalue=spec.clipvalue
    )
    model.compile(optimizer=optimizer, loss="mse")
    return model


def fit_model(
    model: keras.Model,
    train_ds,
    val_ds,
    spec: TrainSpec,
    hooks: Sequence[EpochHook] = (),
) -> FitResult:
    """Fit a compiled model; restore the weights of the best monitored epoch.

    The monitor is `val_loss` when `val_ds` is given, else `loss`.

    Raises:
        TrainingError: the loss became non-finite ("non-finite loss at epoch E").
    """
    monitor = "val_loss" if val_ds is not None else "loss"
    callbacks = [keras.callbacks.TerminateOnNaN(), _HookCallback(hooks)]
    if spec.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor, patience=spec.patience, restore_best_weights=True
            )
        )
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=spec.epochs,
        callbacks=callbacks,
        shuffle=False,  # windows are shuffled in the pipeline, per split
        verbose=0,
    ).history
    seconds = time.perf_counter() - start
    losses = history.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        epoch = next((i + 1 for i, v in enumerate(losses) if not math.isfinite(v)), 1)
        raise TrainingError(
            f"non-finite loss at epoch {epoch}: lower `train.learning_rate` "
            f"(now {spec.learning_rate}) or check the data for extreme values."
        )
    watched = history[monitor]
    # EarlyStopping restores the best epoch; without it the last weights stay.
    best_epoch = watched.index(min(watched)) + 1 if spec.patience else len(losses)
    return FitResult(
        history={k: [float(v) for v in vals] for k, vals in history.items()},
        epochs_trained=len(losses),
        best_epoch=best_epoch,
        seconds=seconds,
    )


def progress_printer(emit: Callable[[str], None], every: int, epochs: int) -> EpochHook:
    """A hook that emits one line every `every` epochs (and at the first)."""

    def hook(epoch: int, logs: dict[str, float]) -> None:
        if every and (epoch == 1 or epoch % every == 0 or epoch == epochs):
            values = "  ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()))
            emit(f"epoch {epoch}/{epochs}  {values}")

    return hook


class _HookCallback(keras.callbacks.Callback):
    """Calls each hook with the 1-based epoch and plain-float logs."""

    def __init__(self, hooks: Sequence[EpochHook]):
        super().__init__()
        self._hooks = list(hooks)

    def on_epoch_end(self, epoch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items()}
        for hook in self._hooks:
            hook(epoch + 1, values)
