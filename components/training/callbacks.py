"""What watches a training epoch by epoch: hooks with plain-float logs, the
guard that stops a loss turning non-finite or exploding (`fit_model` then
raises with the epoch and the reason), early stopping that restores the best
weights, and the checkpoint written after every epoch for resume.
"""

import math
import time
from collections.abc import Callable, Sequence

import keras

from components.training.checkpoint import CheckpointFolder, TrainingState

EpochHook = Callable[[int, dict[str, float]], None]


# The divergence guard. Targets are z-scored on the training split, so
# forecasting zero costs an MSE of about 1 and a fresh network a few. A
# training loss above DIVERGENCE_FACTOR x the first epoch's (counted as at
# least 1), or above DIVERGENCE_BOUND whatever the first epoch was (an error of
# 1,000 training standard deviations), has left any useful model behind.
DIVERGENCE_FACTOR = 1e3


DIVERGENCE_BOUND = 1e6


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
            return (
                epoch,
                "loss diverged",
                (
                    f"loss {loss:.3g} above {limit:.3g}: {DIVERGENCE_FACTOR:g} x the "
                    f"first epoch's loss, at most {DIVERGENCE_BOUND:g}"
                ),
            )
    return None


class HookCallback(keras.callbacks.Callback):
    """Calls each hook with the 1-based epoch and plain-float logs."""

    def __init__(self, hooks: Sequence[EpochHook]):
        super().__init__()
        self._hooks = list(hooks)

    def on_epoch_end(self, epoch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items()}
        for hook in self._hooks:
            hook(epoch + 1, values)


class DivergenceGuard(keras.callbacks.Callback):
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


class EarlyStopping(keras.callbacks.EarlyStopping):
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


class SaveEachEpoch(keras.callbacks.Callback):
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

    def __init__(self, folder: CheckpointFolder, before, early: EarlyStopping | None):
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
