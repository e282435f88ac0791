"""The compiled loop against Keras `fit`: same windows, same order, same math,
so the same weights; early stopping, best weights and resume work the same."""

import numpy as np
import pytest
from conftest import make_series

from components.config.schema import ModelSpec, TrainSpec, WindowSpec
from components.data.windowing import make_dataset
from components.models import build_model
from components.training import checkpoint, functional_epoch
from components.training import fit as training
from components.training.compiled_loop import materialize
from components.training.precision import precision_policy

WINDOW = WindowSpec(input_width=8, horizon=2, stride=2)
# Float tolerance: the compiled loop sums losses and applies Adam with fused
# kernels, in another order than Keras' ops (1e-5 relative after 3 epochs, 3e-6 absolute after 20).
RTOL, ATOL = 1e-4, 1e-5


def _rows(n=200):
    rows = make_series(n).to_numpy(np.float32)
    return (rows - rows.mean(0)) / rows.std(0)


def _train(loop, kind, spec, train_rows, val_rows, folder=None, resume=None):
    start = resume.epoch if resume else 0
    if loop == "compiled":
        train = materialize(train_rows, train_rows, WINDOW, shuffle=True, seed=11)
        val = materialize(val_rows, val_rows, WINDOW)
    else:
        train = make_dataset(
            train_rows, train_rows, WINDOW, spec.batch_size, True, 11, start
        )
        val = make_dataset(val_rows, val_rows, WINDOW, spec.batch_size)
    model = build_model(ModelSpec(kind=kind, units=[8]), (8, 2), (2, 2), seed=5)
    training.compile_model(model, spec)
    result = training.fit_model(model, train, val, spec, (), folder, resume)
    assert result.loop == loop
    return model, result


@pytest.mark.parametrize(
    "kind, loss", [("mlp", "mse"), ("gru", "mse"), ("seq2seq", "mse"), ("gru", "mae")]
)
def test_same_weights_and_history_as_fit(kind, loss):
    spec = TrainSpec(epochs=3, batch_size=16, patience=0, learning_rate=0.01, loss=loss)
    rows = _rows()
    fitted, by_fit = _train("fit", kind, spec, rows[:150], rows[150:])
    compiled, by_loop = _train("compiled", kind, spec, rows[:150], rows[150:])
    assert functional_epoch.supports(compiled)  # one graph per epoch, this loss too
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(by_loop.history[key], by_fit.history[key], rtol=RTOL)
    for a, b in zip(compiled.get_weights(), fitted.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_early_stopping_and_best_weights_as_fit():
    """Validation rows unlike the training rows: val_loss turns up early and
    early stopping ends both loops at the same epoch with the same weights."""
    spec = TrainSpec(epochs=40, batch_size=16, patience=2, learning_rate=0.05)
    rows = _rows()
    val_rows = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)
    fitted, by_fit = _train("fit", "mlp", spec, rows[:150], val_rows)
    compiled, by_loop = _train("compiled", "mlp", spec, rows[:150], val_rows)
    assert by_loop.epochs_trained == by_fit.epochs_trained < 40  # stopped early
    assert by_loop.best_epoch == by_fit.best_epoch < by_loop.epochs_trained
    for a, b in zip(compiled.get_weights(), fitted.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    val = materialize(val_rows, val_rows, WINDOW)
    restored = compiled.evaluate(val.x, val.y, verbose=0)  # the best epoch's weights
    best = by_loop.history["val_loss"][by_loop.best_epoch - 1]
    assert restored == pytest.approx(best, rel=1e-4)


def test_a_compiled_training_resumes_from_its_checkpoint(tmp_path):
    spec = TrainSpec(epochs=8, batch_size=16, patience=0, learning_rate=0.01)
    rows = _rows()
    straight, expected = _train("compiled", "gru", spec, rows[:150], rows[150:])
    with checkpoint.claim(tmp_path, "key", "run-1") as folder:
        _train(
            "compiled",
            "gru",
            spec.model_copy(update={"epochs": 3}),  # "killed" after epoch 3
            rows[:150],
            rows[150:],
            folder,
        )
        state = folder.load()
        resumed, result = _train(
            "compiled", "gru", spec, rows[:150], rows[150:], folder, state
        )
    assert state.epoch == 3 and result.resumed_from_epoch == 4
    np.testing.assert_allclose(
        result.history["loss"], expected.history["loss"], rtol=1e-5
    )
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _compiled_gru(seed, units=8, spec=None, policy="float32"):
    """A GRU trained 2 epochs on the compiled loop; (model, result, weights
    before training)."""
    spec = spec or TrainSpec(epochs=2, batch_size=16, patience=0, learning_rate=0.01)
    rows = _rows()
    with precision_policy(policy):
        model = build_model(ModelSpec(kind="gru", units=[units]), (8, 2), (2, 2), seed)
        training.compile_model(model, spec)
    start = model.get_weights()
    train = materialize(rows[:150], rows[:150], WINDOW, shuffle=True, seed=11)
    val = materialize(rows[150:], rows[150:], WINDOW)
    return model, training.fit_model(model, train, val, spec), start


def test_a_model_of_the_same_architecture_reuses_the_traced_epoch():
    """The second seed runs the graph traced for the first; it trains its own
    variables (not the first model's) to exactly what a fresh trace gives."""
    functional_epoch.clear_cache()
    first, _, _ = _compiled_gru(seed=1)
    first_weights = first.get_weights()
    assert functional_epoch.cached() == 1
    reused, by_reused, start = _compiled_gru(seed=2)
    assert functional_epoch.cached() == 1  # no new trace
    assert not all(np.allclose(a, b) for a, b in zip(start, reused.get_weights()))
    for a, b in zip(first.get_weights(), first_weights, strict=True):
        np.testing.assert_array_equal(a, b)  # the first model is untouched
    functional_epoch.clear_cache()
    fresh, by_fresh, _ = _compiled_gru(seed=2)
    assert by_reused.history == by_fresh.history
    for a, b in zip(reused.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    _compiled_gru(seed=2, units=12)  # another architecture: its own trace
    assert functional_epoch.cached() == 2


def test_recurrent_layers_train_unrolled_on_cpu_and_stay_rolled_in_the_model():
    """Windows this short are unrolled while tracing on a CPU (the weights
    still match `fit`'s rolled loop: test above); the model keeps its setting."""
    model, _, _ = _compiled_gru(seed=3)
    gru = model.get_layer("gru_0")
    assert functional_epoch.should_unroll(model) and gru.unroll is False
    long = build_model(ModelSpec(kind="gru", units=[4]), (64, 2), (1, 2))
    assert not functional_epoch.should_unroll(long)  # over UNROLL_MAX_STEPS


def test_mixed_float16_trains_through_keras_train_step():
    """Loss scaling is Keras' own (LossScaleOptimizer): the compiled loop runs
    its train_step instead of the fused Adam, and still learns."""
    spec = TrainSpec(epochs=3, batch_size=16, patience=0, learning_rate=0.01)
    model, result, _ = _compiled_gru(seed=4, spec=spec, policy="mixed_float16")
    assert not functional_epoch.supports(model)
    assert result.loop == "compiled"
    losses = result.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_xla_trains_to_the_same_weights_and_auto_picks_it_only_where_it_paid():
    import tensorflow as tf

    spec = TrainSpec(epochs=2, batch_size=16, patience=0, learning_rate=0.01)
    rolled, by_rolled, _ = _compiled_gru(seed=6, spec=spec)
    on = spec.model_copy(update={"xla": "on"})
    compiled, by_xla, _ = _compiled_gru(seed=6, spec=on)
    assert by_xla.xla and not by_rolled.xla
    np.testing.assert_allclose(by_xla.history["loss"], by_rolled.history["loss"], rtol=RTOL)
    for a, b in zip(compiled.get_weights(), rolled.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    big = functional_epoch.XLA_MIN_WINDOWS
    on_cpu = not tf.config.list_physical_devices("GPU")  # auto: off on a GPU
    assert functional_epoch.use_xla(compiled, "auto", big) == on_cpu
    assert not functional_epoch.use_xla(compiled, "auto", big - 1)  # compile won't pay
    assert not functional_epoch.use_xla(compiled, "off", big)
    bidirectional = build_model(ModelSpec(kind="bidirectional", units=[4]), (8, 2), (2, 2))
    assert not functional_epoch.use_xla(bidirectional, "auto", big)  # XLA was slower
