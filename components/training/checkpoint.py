"""Resumable training: the state of a training saved after every epoch, so that
a process killed outright (SIGKILL, OOM killer, a lost machine) can be rerun
and go on from the last completed epoch instead of epoch 1.

One folder per training identity (`training_key`: the config that shapes the
training plus the data digest). A process owns its folder through an exclusive
`flock` on `<key>.lock` beside it, which the kernel releases when the process
dies however it dies: a rerun finds the lock free and the state there; a second
process training the same thing at the same time finds it taken and trains in
a private folder. The folder goes when its training completes; the empty lock
file stays (deleting a lock file others may be opening would let two owners in).

What is saved (written to new files, then published by an atomic rename of
`state.json`, so a kill mid-save leaves the previous epoch's state intact):
- `epoch-N.npy`: the model's weights, then the optimizer's variables (Adam
  moments, iteration count), as consecutive `.npy` arrays;
- `best-N.npy`: early stopping's best weights, when patience is on;
- `state.json`: epochs done, the history so far, early stopping's counters,
  whether it stopped, and the run that wrote it.

Why not `model.save_weights` (an `.h5` file, optimizer included): measured
27 ms per save for a small GRU, about half of one gas furnace epoch. One
compiled snapshot of every variable plus raw `.npy` writes costs about 1 ms.
"""

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from components.common.errors import TrainingError

STATE_FILE = "state.json"


@dataclass(frozen=True)
class TrainingState:
    """Where a training stood at the end of its last saved epoch.

    Attributes:
        epoch: epochs completed (the next to run is `epoch + 1`, 1-based).
        history: per-epoch values so far, e.g. {"loss": [...], "val_loss": [...]}.
        run_id: the MLflow run that was training.
        weights: file name of the model + optimizer weights.
        best: early stopping's best monitored value, None before the first.
        best_epoch: early stopping's 0-based best epoch.
        wait: epochs since the best.
        best_weights: file name of the best weights, None without early stopping.
        stopped: early stopping ended the training at `epoch`.
    """

    epoch: int
    history: dict[str, list[float]]
    run_id: str
    weights: str
    best: float | None = None
    best_epoch: int = 0
    wait: int = 0
    best_weights: str | None = None
    stopped: bool = False


def training_key(config: dict, data_digest: str) -> str:
    """Identity of a training: the same config and data give the same key."""
    text = json.dumps({"config": config, "data": data_digest}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CheckpointFolder:
    """A training's checkpoint folder, owned by this process while open."""

    def __init__(self, path: Path, key: str, run_id: str, shared: bool, lock_file):
        self.path = path
        self.key = key  # recorded on the run; private folders get their own
        self.run_id = run_id  # the run training here, written into each state
        self.shared = shared  # False: another process held the key's folder
        self._lock_file = lock_file
        self._best_saved: str | None = None
        self._snapshot = None  # (model, compiled read of all its variables)

    def load(self) -> TrainingState | None:
        """The last saved state, or None (nothing saved, or unreadable)."""
        try:
            data = json.loads((self.path / STATE_FILE).read_text())
            state = TrainingState(**data)
        except (OSError, ValueError, TypeError):
            return None
        if not (self.path / state.weights).exists():
            return None
        return state

    def restore(self, model, state: TrainingState) -> list | None:
        """Load the model and optimizer variables of `state`; return the best
        weights (a list of arrays) when early stopping saved some.

        Raises:
            TrainingError: the saved variables do not fit this model.
        """
        variables = _variables(model)
        saved = _read_arrays(self.path / state.weights)
        shapes = [tuple(v.shape) for v in variables]
        if [a.shape for a in saved] != shapes:
            raise TrainingError(
                f"the checkpoint in {self.path} does not fit this model "
                f"({len(saved)} saved arrays for {len(shapes)} variables): delete "
                "the folder or set train.resume=false"
            )
        for variable, value in zip(variables, saved):
            variable.assign(value)
        if not state.best_weights:
            return None
        return _read_arrays(self.path / state.best_weights)

    def save(self, model, state: TrainingState, best_weights: list | None) -> None:
        """Write `state` (epoch `state.epoch`) and publish it atomically."""
        if not all(math.isfinite(v) for vals in state.history.values() for v in vals):
            return  # a non-finite epoch is never worth resuming from
        if self._snapshot is None or self._snapshot[0] is not model:
            self._snapshot = (model, _snapshot_function(_variables(model)))
        weights = f"epoch-{state.epoch}.npy"
        _write_arrays(self.path / weights, [t.numpy() for t in self._snapshot[1]()])
        best_file = None
        if best_weights is not None:
            best_file = f"best-{state.best_epoch}.npy"
            if self._best_saved != best_file:  # a new best epoch, new weights
                _write_arrays(self.path / best_file, best_weights)
                self._best_saved = best_file
        state = replace(
            state, weights=weights, best_weights=best_file, run_id=self.run_id
        )
        tmp = self.path / f"{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(vars(state)))  # not asdict: no deep copy
        os.replace(tmp, self.path / STATE_FILE)
        keep = {STATE_FILE, weights, best_file}
        for stale in self.path.iterdir():
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget the saved state (none to resume, or its training is complete)."""
        for entry in self.path.iterdir():
            entry.unlink(missing_ok=True)

    def close(self) -> None:
        """Release the folder; remove it when it holds no state (a private one
        always)."""
        if not self.shared or not any(self.path.iterdir()):
            shutil.rmtree(self.path, ignore_errors=True)
        self._lock_file.close()  # last: nobody else owns the folder before this
        if not self.shared:
            Path(self._lock_file.name).unlink(missing_ok=True)


def _variables(model) -> list:
    """The model's weights, then its optimizer's variables (built if needed)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return list(model.weights)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)  # variables to restore into
    return list(model.weights) + list(optimizer.variables)


def _snapshot_function(variables):
    """One compiled call that reads every variable (one call, not one per
    variable: 0.6 ms instead of 2.8 ms for a small GRU and its Adam)."""
    import tensorflow as tf

    handles = [getattr(v, "value", v) for v in variables]

    @tf.function(autograph=False)
    def snapshot():
        return [tf.identity(h) for h in handles]

    return snapshot


def _write_arrays(path: Path, arrays) -> None:
    with open(path, "wb") as f:
        for array in arrays:
            np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)


def _read_arrays(path: Path) -> list[np.ndarray]:
    arrays = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while f.tell() < size:
            arrays.append(np.lib.format.read_array(f, allow_pickle=False))
    return arrays


@contextlib.contextmanager
def claim(root: Path, key: str, run_id: str) -> Iterator[CheckpointFolder]:
    """Own the checkpoint folder of `key` under `root` for the block.

    When another live process owns it (the same training started twice), a
    private folder is used instead: nothing to resume, nothing shared.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lock_file = open(root / f"{key}.lock", "w")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shared = True
    except BlockingIOError:
        lock_file.close()
        key = f"{key}-{uuid.uuid4().hex[:8]}"  # unique: nobody else opens it
        lock_file = open(root / f"{key}.lock", "w")
        shared = False
    path = root / key
    path.mkdir(exist_ok=True)
    folder = CheckpointFolder(path, key, run_id, shared, lock_file)
    try:
        yield folder
    finally:
        folder.close()
