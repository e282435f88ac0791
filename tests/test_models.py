"""The trainer's guarantees: loss goes down, best epoch kept, NaN and
divergence stops, seeds."""

import random
import threading
import time

import numpy as np
import pandas as pd
import pytest

from components.common.errors import TrainingError
from components.common.seeds import seed_everything
from components.config.schema import ModelSpec, TrainSpec, WindowSpec
from components.data.windowing import make_dataset
from components.models import build_model
from components.models.registry import get_builder
from components.training.callbacks import DIVERGENCE_BOUND, divergence
from components.training.compiled_loop import materialize
from components.training.fit import compile_model, fit_model


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"expected one of \['bidirectional', 'gru', 'lstm', 'mlp', 'seq2seq', 'simple_rnn'\], got 'tcn'",
    ):
        get_builder("tcn")


def test_the_config_accepts_exactly_the_kinds_that_have_a_builder():
    from components.config.schema import MODEL_KINDS
    from components.models.registry import BUILDERS

    assert sorted(MODEL_KINDS) == sorted(BUILDERS)


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


def _overflowing_mlp(scale: float, settings: TrainSpec):
    """An MLP whose weights are all `scale`: its forecasts are about
    scale**2 x the inputs, whatever the library versions, and Adam moves a
    weight by at most the learning rate per step, so they stay that big."""
    model = compile_model(
        build_model(ModelSpec(kind="mlp", units=[4], skip="none"), (5, 1), (1, 1)),
        settings,
    )
    for variable in model.weights:
        variable.assign(np.full(variable.shape, scale, "float32"))
    return model


@pytest.mark.parametrize("loop", ["compiled", "fit"])
def test_an_exploding_but_finite_loss_stops_training_with_the_epoch(loop):
    spec = WindowSpec(input_width=5, horizon=1)
    data = _windows(_sine_rows(60), spec, 8, loop)
    settings = TrainSpec(epochs=20, patience=0, learning_rate=1e-3)
    model = _overflowing_mlp(100.0, settings)  # forecasts ~1e4: loss ~1e8
    with pytest.raises(TrainingError, match="loss diverged at epoch 1") as caught:
        fit_model(model, data, None, settings)
    assert "lower `train.learning_rate` (now 0.001)" in str(caught.value)


@pytest.mark.parametrize("loop", ["compiled", "fit"])
def test_a_layer_that_overflows_float32_stops_training_as_non_finite(loop):
    spec = WindowSpec(input_width=5, horizon=1)
    data = _windows(_sine_rows(60), spec, 8, loop)
    settings = TrainSpec(epochs=20, patience=0)
    model = _overflowing_mlp(1e20, settings)  # forecasts ~1e40 > float32 max
    with pytest.raises(TrainingError, match="non-finite loss at epoch 1"):
        fit_model(model, data, None, settings)


def test_divergence_rule_by_hand():
    assert divergence([1.0, 0.5, 0.2]) is None
    assert divergence([0.01, 999.0]) is None  # the first epoch counts as >= 1
    assert divergence([0.01, 1001.0])[0] == 2
    assert divergence([3.0, 2999.0]) is None
    assert divergence([3.0, 2.0, 3001.0])[:2] == (3, "loss diverged")
    assert divergence([DIVERGENCE_BOUND * 2])[:2] == (1, "loss diverged")
    assert divergence([5e5, 1.1 * DIVERGENCE_BOUND])[0] == 2  # capped at the bound
    assert divergence([1.0, float("nan")])[:2] == (2, "non-finite loss")
    assert divergence([float("inf")])[:2] == (1, "non-finite loss")


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


def test_a_model_built_for_training_starts_at_the_linear_fit_and_says_so():
    from components.data.preprocess import ScaledSplit
    from components.data.windowing import make_windows
    from components.models import predict
    from components.models.linear import fit_linear_baseline, predict_linear_baseline
    from components.training.builder import build_for_training

    rows = _sine_rows(120).astype(np.float32)
    split = ScaledSplit(rows, rows, rows.astype(np.float64), pd.RangeIndex(len(rows)))
    window = WindowSpec(input_width=8, horizon=2)
    spec = ModelSpec(kind="gru", units=[4], skip="linear", window_norm="none")
    built = build_for_training(spec, TrainSpec(seed=5), window, split)
    assert built.describe() == (
        f"gru + linear skip (float32): {built.model.count_params()} parameters"
    )
    assert built.model.optimizer is not None  # compiled
    x, y = make_windows(rows, rows, window)
    expected = predict_linear_baseline(fit_linear_baseline(x, y), x, y.shape[1:])
    np.testing.assert_allclose(predict(built.model, x), expected, atol=1e-4)
    again = build_for_training(spec, TrainSpec(seed=5), window, split)
    for a, b in zip(built.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the seed alone decides
