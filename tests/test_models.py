"""The trainer's guarantees: loss goes down, best epoch kept, NaN stop, seeds."""

import random
import threading
import time

import numpy as np
import pytest

from components.config import ModelSpec, TrainSpec, WindowSpec
from components.errors import TrainingError
from components.models import build_model
from components.models.registry import get_builder
from components.seeds import seed_everything
from components.training import compile_model, fit_model
from components.compiled_loop import materialize
from components.windowing import make_dataset


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"expected one of \['bidirectional', 'gru', 'lstm', 'mlp', 'seq2seq', 'simple_rnn'\], got 'tcn'",
    ):
        get_builder("tcn")


def _sine_rows(n=200):
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 20).astype("float32")[:, None]


def _windows(rows, spec, batch_size, loop, shuffle=False, seed=None):
    """The same windows for either training loop."""
    if loop == "compiled":
        return materialize(rows, rows, spec, shuffle=shuffle, seed=seed)
    return make_dataset(rows, rows, spec, batch_size, shuffle=shuffle, seed=seed)


@pytest.mark.parametrize("loop", ["compiled", "fit"])
def test_training_lowers_the_loss_and_keeps_the_best_epoch(loop):
    rows = _sine_rows()
    spec = WindowSpec(input_width=10, horizon=1)
    train = _windows(rows[:150], spec, 16, loop, shuffle=True, seed=0)
    val = _windows(rows[150:], spec, 16, loop)
    seed_everything(0)
    model = build_model(ModelSpec(kind="lstm", units=[8]), (10, 1), (1, 1))
    settings = TrainSpec(epochs=30, learning_rate=0.01, patience=5)
    result = fit_model(compile_model(model, settings), train, val, settings)
    losses = result.history["loss"]
    assert losses[-1] < 0.2 * losses[0]
    best = int(np.argmin(result.history["val_loss"])) + 1
    assert result.best_epoch == best
    restored = model.evaluate(
        *((val.x, val.y) if loop == "compiled" else (val,)), verbose=0
    )
    assert restored == pytest.approx(result.history["val_loss"][best - 1], rel=1e-4)


@pytest.mark.parametrize("loop", ["compiled", "fit"])
def test_non_finite_loss_stops_training_with_the_epoch(loop):
    rows = _sine_rows(60)
    rows[30] = np.inf  # an inf in one batch
    spec = WindowSpec(input_width=5, horizon=1)
    data = _windows(rows, spec, 8, loop)
    settings = TrainSpec(epochs=20, patience=0)
    model = compile_model(
        build_model(ModelSpec(kind="mlp", units=[4]), (5, 1), (1, 1)), settings
    )
    with pytest.raises(TrainingError, match="non-finite loss at epoch 1"):
        fit_model(model, data, None, settings)


@pytest.fixture
def busy_random():
    """Another thread drawing from Python's shared `random`, as Prefect's
    in-process server or MLflow's async logger may while a model is built."""
    stop = threading.Event()

    def draw():
        while not stop.is_set():
            random.random()
            time.sleep(1e-5)

    thread = threading.Thread(target=draw, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


@pytest.mark.parametrize("kind", ["mlp", "lstm", "bidirectional", "seq2seq"])
def test_same_seed_same_initial_weights_while_another_thread_uses_random(
    kind, busy_random
):
    spec = ModelSpec(kind=kind, units=[4], dropout=0.1)
    weights = []
    for seed in (3, 3, 4):
        model = build_model(spec, (6, 2), (2, 2), seed=seed)
        weights.append(np.concatenate([w.ravel() for w in model.get_weights()]))
    np.testing.assert_array_equal(weights[0], weights[1])
    assert not np.allclose(weights[0], weights[2])  # the seed does matter


def test_same_seed_same_predictions(busy_random):
    rows = _sine_rows(80)
    spec = WindowSpec(input_width=8, horizon=1)
    x = rows[:8][None]
    outputs = []
    for _ in range(2):
        seed_everything(7)
        data = make_dataset(rows, rows, spec, 16, shuffle=True, seed=7)
        settings = TrainSpec(epochs=3, patience=0)
        model = build_model(
            ModelSpec(kind="gru", units=[4], dropout=0.2), (8, 1), (1, 1), seed=7
        )
        fit_model(compile_model(model, settings), data, None, settings)
        outputs.append(model.predict(x, verbose=0))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5)
