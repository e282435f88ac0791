"""Compile and fit: Adam on MSE, early stopping with best weights, and a guard
that stops a training whose loss turns non-finite or explodes.

Training returns values (history, timings) and never logs: the caller passes
`hooks` (callables `hook(epoch, logs)`) to stream per-epoch numbers wherever it
wants, for example to MLflow or the terminal.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import keras

from components.common.errors import TrainingError
from components.config.schema import TrainSpec
from components.training import compiled_loop
from components.training.callbacks import (
    DivergenceGuard,
    EarlyStopping,
    EpochHook,
    HookCallback,
    SaveEachEpoch,
    divergence,
)
from components.training.checkpoint import CheckpointFolder, TrainingState


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


def compile_model(model: keras.Model, spec: TrainSpec) -> keras.Model:
    """Attach Adam(learning_rate, optional clipping) and the loss:
    `train.loss` (MSE or MAE), or for a quantile model the pinball loss over
    its levels."""
    from components.models import quantile_levels
    from components.models.quantiles import PinballLoss

    optimizer = keras.optimizers.Adam(
        spec.learning_rate, clipnorm=spec.clipnorm, clipvalue=spec.clipvalue
    )
    levels = quantile_levels(model)
    model.compile(
        optimizer=optimizer, loss=PinballLoss(levels) if levels else spec.loss,
        steps_per_execution=steps_per_execution(spec),
    )  # fmt: skip
    return model


def steps_per_execution(spec: TrainSpec) -> int:
    """`train.steps_per_execution` resolved: `auto` is 32, or 1 under a
    distribution strategy (Keras 3.x's multi-step function fails there:
    "You must feed a value for placeholder tensor", tests/test_devices.py)."""
    if spec.steps_per_execution != "auto":
        return spec.steps_per_execution
    return 1 if spec.devices != 1 else 32


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
        HookCallback(hooks),
        DivergenceGuard(before.get("loss", [])),
    ]
    early = None
    if spec.patience:
        early = EarlyStopping(monitor, spec.patience, resume, best_weights)
        callbacks.append(early)
    if checkpoint is not None:
        callbacks.append(SaveEachEpoch(checkpoint, before, early))
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


def use_compiled_loop(
    spec: TrainSpec, sizes: dict[str, int], window, n_inputs: int, n_targets: int
) -> bool:
    """`train.loop`: `compiled` or `fit` as asked; `auto` takes the compiled
    loop when the windows of the training and validation splits (`sizes`:
    rows per split) fit in `compiled_loop.MEMORY_BUDGET_BYTES`."""
    if spec.loop != "auto":
        return spec.loop == "compiled"
    if spec.devices != 1:  # a distribution strategy: model.fit splits the batches
        return False
    if spec.windows_per_series:  # each epoch draws its windows in the pipeline
        return False
    needed = sum(
        compiled_loop.window_bytes(sizes.get(name, 0), window, n_inputs, n_targets)
        for name in ("train", "val")
    )
    return needed <= compiled_loop.MEMORY_BUDGET_BYTES
