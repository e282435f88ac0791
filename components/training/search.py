"""Hyperparameter search: the space searched per architecture, a trial's picks as
config settings, and pruning on validation loss.

The space (every kind; `n` = the experiment's `window.input_width`):

| setting | range |
| --- | --- |
| `model.units` | width 8-128 (log scale) x layers: 1-3 for `mlp`, 1-2 otherwise |
| `model.dropout` | 0.0-0.3 |
| `train.learning_rate` | 0.001-0.03 (log scale) |
| `window.input_width` | n/2 .. 2n, capped so every split still holds a window |
| `model.attention` | `seq2seq` only: none, dot, additive |

Searches use validation loss alone: the test split is never scored here.
"""

from typing import Any

import optuna

from components.config.schema import ExperimentConfig

MAX_LAYERS = {"mlp": 3}
ATTENTION_KINDS = ("seq2seq",)


def new_study(seed: int, warmup_epochs: int = 5) -> optuna.Study:
    """TPE sampler (seeded: the same seed proposes the same trials) and a
    median pruner that stops a trial whose best validation loss at some epoch
    is worse than the median of earlier trials at that epoch; never within its
    first `warmup_epochs` epochs, nor before two trials have finished."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=2, n_warmup_steps=warmup_epochs + 1
        ),
    )


def suggest(
    trial: optuna.Trial, config: ExperimentConfig, max_input_width: int
) -> dict[str, Any]:
    """This trial's settings as dotted config keys, e.g. {"model.units": [32, 32]}.

    Args:
        max_input_width: the widest window every split can hold.
    """
    kind = config.model.kind
    width = trial.suggest_int("units", 8, 128, log=True)
    layers = trial.suggest_int("layers", 1, MAX_LAYERS.get(kind, 2))
    n = config.window.input_width
    low, high = max(2, n // 2), max(2, min(2 * n, max_input_width))
    settings: dict[str, Any] = {
        "model.units": [width] * layers,
        "model.dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "train.learning_rate": trial.suggest_float(
            "learning_rate", 1e-3, 3e-2, log=True
        ),
        "window.input_width": trial.suggest_int("input_width", min(low, high), high),
    }
    if kind in ATTENTION_KINDS:
        settings["model.attention"] = trial.suggest_categorical(
            "attention", ["none", "dot", "additive"]
        )
    return settings


class PruneOnValLoss:
    """Training hook: reports the best `val_loss` so far (1-based epoch as the
    step) to the trial and raises
    `optuna.TrialPruned` when the pruner says the trial is behind."""

    def __init__(self, trial: optuna.Trial):
        self._trial = trial
        self._best = float("inf")

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        # The best so far: early stopping keeps the best weights, not the last.
        self._best = min(self._best, logs["val_loss"])
        self._trial.report(self._best, epoch)
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")
