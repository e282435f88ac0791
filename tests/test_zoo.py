"""The architecture zoo: one contract for every registered kind, golden math for
LSTM and GRU against a NumPy reference, and the precision policies."""

import numpy as np
import pytest

from components.common.seeds import seed_everything
from components.config.schema import ModelSpec, TrainSpec, WindowSpec
from components.data.windowing import make_dataset
from components.models import build_model, model_kinds
from components.models.registry import cudnn_blockers
from components.training.fit import compile_model, fit_model
from components.training.precision import precision_policy, resolve_precision

WIDTH = 24


def _two_sines(n=200) -> np.ndarray:
    t = np.arange(n)
    return np.stack([np.sin(2 * np.pi * t / 25), np.sin(2 * np.pi * t / 9)], 1).astype(
        "float32"
    )  # (N, 2), noiseless, variance 0.5 per column


# The encoder-decoder must learn a whole trajectory from one state: more epochs.
EPOCHS = {"seq2seq": 30}


def _train(kind: str, horizon: int, policy: str = "float32", epochs: int | None = None):
    epochs = epochs or EPOCHS.get(kind, 15)
    rows = _two_sines()
    data = make_dataset(
        rows,
        rows,
        WindowSpec(input_width=WIDTH, horizon=horizon),
        32,
        shuffle=True,
        seed=0,
    )
    seed_everything(0)
    settings = TrainSpec(epochs=epochs, learning_rate=0.02, patience=0)
    with precision_policy(policy):
        model = build_model(
            ModelSpec(kind=kind, units=[8, 8]), (WIDTH, 2), (horizon, 2), seed=0
        )
        compile_model(model, settings)
    return model, fit_model(model, data, None, settings), rows


@pytest.mark.parametrize("horizon", [1, 12])
@pytest.mark.parametrize("kind", model_kinds())
def test_contract_shape_learning_and_saving(kind, horizon, tmp_path):
    import keras

    model, result, rows = _train(kind, horizon)
    x = rows[None, :WIDTH]
    before = model.predict(np.repeat(x, 3, 0), verbose=0)
    assert before.shape == (3, horizon, 2) and before.dtype == np.float32
    # learned a noiseless signal: final loss far below the signal's variance (0.5)
    assert result.history["loss"][-1] < 0.1 * rows.var(), result.history["loss"]
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(
        loaded.predict(np.repeat(x, 3, 0), verbose=0), before, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("kind", model_kinds())
def test_mixed_bfloat16_trains_with_float32_outputs(kind):
    model, result, rows = _train(kind, horizon=3, policy="mixed_bfloat16", epochs=6)
    assert model.dtype_policy.name == "mixed_bfloat16"
    recurrent = [
        l
        for l in model.layers
        if l.name.split("_")[0]
        in ("lstm", "gru", "simple", "bi", "encoder", "decoder", "dense")
    ]
    assert recurrent and all(l.dtype_policy.name == "mixed_bfloat16" for l in recurrent)
    assert model.get_layer("forecast").dtype_policy.name == "float32"
    losses = result.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert model.predict(rows[None, :WIDTH], verbose=0).dtype == np.float32


def test_mixed_float16_gets_loss_scaling_and_auto_follows_the_device():
    import keras
    import tensorflow as tf

    with precision_policy("mixed_float16"):
        model = build_model(ModelSpec(kind="gru", units=[4]), (5, 1), (1, 1))
        compile_model(model, TrainSpec())
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.config.dtype_policy().name == "float32"  # scope restored
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert resolve_precision("auto") == ("mixed_float16" if has_gpu else "float32")
    assert resolve_precision("mixed_bfloat16") == "mixed_bfloat16"


@pytest.mark.parametrize(
    "options",
    [
        {"kind": "bidirectional", "cell": "gru", "merge_mode": "sum"},
        {
            "kind": "bidirectional",
            "cell": "simple_rnn",
            "merge_mode": "ave",
            "layer_norm": True,
        },
        {"kind": "seq2seq", "cell": "gru", "attention": "dot"},
        {
            "kind": "seq2seq",
            "cell": "lstm",
            "attention": "additive",
            "layer_norm": True,
        },
        {"kind": "lstm", "dropout": 0.2, "recurrent_dropout": 0.1, "layer_norm": True},
        {"kind": "simple_rnn", "activation": "relu"},
    ],
)
def test_options_build_and_survive_saving(options, tmp_path):
    import keras

    model = build_model(ModelSpec(units=[6, 4], **options), (7, 3), (5, 2))
    x = np.random.default_rng(1).standard_normal((2, 7, 3)).astype("float32")
    before = model.predict(x, verbose=0)
    assert before.shape == (2, 5, 2)
    model.save(tmp_path / "m.keras")
    after = keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_seq2seq_attention_layers_are_keras_own():
    dot = build_model(ModelSpec(kind="seq2seq", attention="dot"), (7, 1), (3, 1))
    additive = build_model(
        ModelSpec(kind="seq2seq", attention="additive"), (7, 1), (3, 1)
    )
    assert type(dot.get_layer("attention")).__name__ == "Attention"
    assert type(additive.get_layer("attention")).__name__ == "AdditiveAttention"
    plain = build_model(ModelSpec(kind="seq2seq"), (7, 1), (3, 1))
    assert "attention" not in [layer.name for layer in plain.layers]


def test_bidirectional_merge_mode_sets_the_width():
    concat = build_model(ModelSpec(kind="bidirectional", units=[5]), (4, 1), (1, 1))
    summed = build_model(
        ModelSpec(kind="bidirectional", units=[5], merge_mode="sum"), (4, 1), (1, 1)
    )
    assert concat.get_layer("bi_0").output.shape[-1] == 10
    assert summed.get_layer("bi_0").output.shape[-1] == 5


def test_cudnn_blockers_name_the_option():
    assert cudnn_blockers(ModelSpec(kind="lstm")) == []
    assert cudnn_blockers(ModelSpec(kind="lstm", recurrent_dropout=0.1)) == [
        "model.recurrent_dropout=0.1"
    ]
    assert cudnn_blockers(ModelSpec(kind="seq2seq", cell="gru", activation="relu")) == [
        "model.activation=relu"
    ]
    assert cudnn_blockers(ModelSpec(kind="simple_rnn", recurrent_dropout=0.1)) == []
    assert cudnn_blockers(ModelSpec(kind="mlp", activation="relu")) == []


# Golden math: Keras' LSTM/GRU against the textbook equations in NumPy.


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _fill_weights(model) -> None:
    """Deterministic, non-symmetric weights, so any change to the math shows."""
    for i, weight in enumerate(model.weights):
        n = int(np.prod(weight.shape))
        weight.assign((0.5 * np.sin(0.37 * np.arange(n) + i)).reshape(weight.shape))


def _numpy_lstm(x, kernel, recurrent, bias):
    hidden = recurrent.shape[0]
    h = np.zeros((len(x), hidden))
    c = np.zeros((len(x), hidden))
    for t in range(x.shape[1]):  # gates in Keras order: input, forget, cell, output
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    return h


def _numpy_gru(x, kernel, recurrent, bias):
    hidden = recurrent.shape[0]
    h = np.zeros((len(x), hidden))
    for t in range(x.shape[1]):  # reset_after=True; gates: update, reset, candidate
        xz, xr, xh = np.split(x[:, t] @ kernel + bias[0], 3, axis=1)
        rz, rr, rh = np.split(h @ recurrent + bias[1], 3, axis=1)
        z, r = _sigmoid(xz + rz), _sigmoid(xr + rr)
        h = z * h + (1 - z) * np.tanh(xh + r * rh)
    return h


@pytest.mark.parametrize(
    "kind, reference", [("lstm", _numpy_lstm), ("gru", _numpy_gru)]
)
def test_golden_recurrent_math(kind, reference):
    model = build_model(ModelSpec(kind=kind, units=[3], skip="none"), (4, 2), (2, 1))
    _fill_weights(model)
    x = np.linspace(-1, 1, 2 * 4 * 2).reshape(2, 4, 2)
    cell = model.get_layer(f"{kind}_0")
    weights = [np.asarray(w, np.float64) for w in cell.get_weights()]
    head_kernel, head_bias = (
        np.asarray(w, np.float64) for w in model.get_layer("head").get_weights()
    )
    expected = (reference(x, *weights) @ head_kernel + head_bias).reshape(2, 2, 1)
    actual = model.predict(x.astype("float32"), verbose=0)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(expected).max() > 0.05  # not a trivially zero network


@pytest.mark.parametrize("kind", model_kinds())
def test_mlflow_logged_model_of_every_kind_loads_back(kind, mlflow_uri):
    import mlflow.keras

    from components import tracking

    model = build_model(ModelSpec(kind=kind, units=[4]), (6, 2), (3, 2))
    run_id = tracking.start_run(mlflow_uri, "zoo", kind, {})
    uri = tracking.log_keras_model(mlflow_uri, run_id, model)
    x = np.random.default_rng(2).standard_normal((2, 6, 2)).astype("float32")
    with tracking.fluent_store(mlflow_uri):
        loaded = mlflow.keras.load_model(uri)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("kind", model_kinds())
def test_a_linear_skip_starts_training_at_the_linear_baseline(kind):
    from components.evaluation.evaluate import (
        fit_linear_baseline,
        predict_linear_baseline,
    )
    from components.models.skip import fit_linear_skip

    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 6, 2)).astype("float32")
    y = (x[:, -2:, :1] * 0.7 + 0.1 * rng.standard_normal((40, 2, 1))).astype("float32")
    model = build_model(ModelSpec(kind=kind, units=[4]), (6, 2), (2, 1), seed=1)
    assert fit_linear_skip(model, x, y)
    expected = predict_linear_baseline(fit_linear_baseline(x, y), x, (2, 1))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)
    assert np.abs(expected).max() > 0.1  # not trivially zero
    plain = build_model(ModelSpec(kind=kind, units=[4], skip="none"), (6, 2), (2, 1))
    assert model.count_params() == plain.count_params() + 6 * 2 * 2 + 2
    assert not fit_linear_skip(plain, x, y)


@pytest.mark.parametrize("kind", model_kinds())
@pytest.mark.parametrize(
    "options",
    [{"window_norm": "last"}, {"window_norm": "revin", "skip": "shared"}],
    ids=["last", "revin+shared"],
)
def test_window_norm_and_shared_skip_train_under_mixed_precision_and_save(
    kind, options, tmp_path
):
    import keras

    from components.training.compiled_loop import materialize

    rows = _two_sines() + np.linspace(0, 3, 200, dtype="float32")[:, None]  # drift
    spec = WindowSpec(input_width=WIDTH, horizon=3)
    settings = TrainSpec(epochs=4, learning_rate=0.01, patience=0)
    with precision_policy("mixed_bfloat16"):
        model = build_model(
            ModelSpec(kind=kind, units=[8], **options), (WIDTH, 2), (3, 2),
            seed=0, target_positions=(0, 1),
        )  # fmt: skip
        compile_model(model, settings)
    losses = fit_model(model, materialize(rows, rows, spec), None, settings)
    assert all(np.isfinite(losses.history["loss"]))
    x = rows[None, -WIDTH:]
    before = model.predict(x, verbose=0)
    assert before.shape == (1, 3, 2) and before.dtype == np.float32
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-5)
