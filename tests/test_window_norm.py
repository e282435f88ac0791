"""Window normalization (`model.window_norm`): golden numbers, persistence
under `last` for a silent network, the revin round trip, the skip fitted in
the normalized space, and a flow that trains and serves such a model."""

import numpy as np
import pytest
from conftest import make_series, write_experiment

from components.common.errors import DataError
from components.config.loading import load_experiment
from components.config.schema import ModelSpec, WindowSpec
from components.data.windowing import make_windows
from components.evaluation.evaluate import fit_linear_baseline, predict_linear_baseline
from components.models import build_model, predict
from components.models.common import target_positions
from components.models.skip import fit_linear_skip
from components.models.window_norm import (
    WindowDenormalization,
    WindowNormalization,
    inner_network,
)

# One window, L=3 steps, C=2 columns; column 1 is the target.
WINDOW = np.array([[[10.0, 1.0], [20.0, 2.0], [30.0, 6.0]]], np.float32)


def test_last_subtracts_the_last_value_of_the_target_columns_only():
    shifted, loc, scale = WindowNormalization("last", [1], 2)(WINDOW)
    np.testing.assert_allclose(shifted[0], [[10, -5], [20, -4], [30, 0]])
    np.testing.assert_allclose(loc, [[[6.0]]])
    np.testing.assert_allclose(scale, [[[1.0]]])


def test_revin_standardizes_each_window_of_the_target_columns():
    shifted, loc, scale = WindowNormalization("revin", [1], 2)(WINDOW)
    mean, std = 3.0, np.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 3 + 1e-5)
    np.testing.assert_allclose(loc, [[[mean]]])
    np.testing.assert_allclose(scale, [[[std]]], rtol=1e-6)
    np.testing.assert_allclose(
        shifted[0, :, 1], (np.array([1, 2, 6]) - mean) / std, rtol=1e-6
    )
    np.testing.assert_array_equal(shifted[0, :, 0], WINDOW[0, :, 0])


@pytest.mark.parametrize("mode", ["last", "revin"])
def test_normalize_then_denormalize_is_the_identity(mode):
    rng = np.random.default_rng(0)
    windows = rng.normal(5.0, 3.0, size=(8, 7, 3)).astype(np.float32)
    shifted, loc, scale = WindowNormalization(mode, [2, 0], 3)(windows)
    series = np.asarray(shifted)[:, :, [2, 0]]  # the normalized target columns
    back = WindowDenormalization()([series, loc, scale])
    np.testing.assert_allclose(back, windows[:, :, [2, 0]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_a_silent_network_under_last_is_persistence(kind):
    spec = ModelSpec(kind=kind, units=[4], skip="none", window_norm="last")
    model = build_model(spec, (5, 2), (3, 1), seed=0, target_positions=(1,))
    for variable in inner_network(model).weights:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    windows = np.random.default_rng(1).normal(size=(6, 5, 2)).astype(np.float32)
    forecast = predict(model, windows)  # (6, 3, 1)
    persistence = np.repeat(windows[:, -1:, 1:], 3, axis=1)
    np.testing.assert_allclose(forecast, persistence, rtol=1e-6)


def test_the_linear_skip_starts_at_the_least_squares_fit_of_the_shifted_windows():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 6, 2)).astype(np.float32)
    y = rng.normal(size=(80, 2, 2))
    spec = ModelSpec(kind="mlp", units=[4], window_norm="last")
    model = build_model(spec, (6, 2), (2, 2), seed=0, target_positions=(0, 1))
    assert fit_linear_skip(model, x, y)
    last = x[:, -1:, :].astype(np.float64)  # both columns are targets
    coef = fit_linear_baseline(x - last, y - last)
    expected = predict_linear_baseline(coef, x - last, (2, 2)) + last
    np.testing.assert_allclose(predict(model, x), expected, rtol=1e-4, atol=1e-4)


def test_a_target_that_is_not_an_input_is_refused_by_name():
    assert target_positions(["a", "b"], ["b"], ModelSpec(window_norm="last")) == (1,)
    assert target_positions(["a"], ["b"], ModelSpec()) == ()
    with pytest.raises(DataError, match=r"window_norm: revin`.*\['b'\] is not"):
        target_positions(["a"], ["b"], ModelSpec(window_norm="revin"))
    with pytest.raises(DataError, match=r"`model.skip: shared` need"):
        target_positions(["a"], ["b"], ModelSpec(skip="shared"))


def test_a_window_normalized_model_trains_evaluates_and_serves(
    prefect_api, tmp_path, mlflow_uri
):
    from flows.train import train_flow

    data = tmp_path / "drift.csv"
    frame = make_series(200)
    frame["b"] += np.linspace(0, 30, len(frame))  # drifts out of its training range
    frame.to_csv(data, index=False)
    path = write_experiment(
        tmp_path / "wn.yaml",
        f"""
data: {{path: {data}}}
split: {{val: 30, test: 30}}
window: {{input_width: 8, horizon: 2}}
model: {{kind: gru, units: [8], window_norm: revin}}
train: {{epochs: 5}}
tracking: {{uri: "{mlflow_uri}", experiment: wn}}
""",
    )
    result = train_flow(load_experiment(path))
    assert np.isfinite(result.metrics["test_mse"])
    report, forecaster = result.evaluation, result.forecaster
    first_window = frame.iloc[len(frame) - 30 : len(frame) - 30 + 8]  # test rows
    served = forecaster.forecast(first_window)
    np.testing.assert_allclose(
        served[["a", "b"]].to_numpy(), report.forecasts["model"][0], rtol=1e-5
    )


def test_the_shared_skip_equals_a_numpy_least_squares_fit_over_every_column(
    tmp_path,
):
    import keras

    from components.models.skip import SHARED_SKIP_LAYER

    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 5, 3)).astype(np.float32)  # column 2 is no target
    y = rng.normal(size=(60, 2, 2))
    spec = ModelSpec(kind="gru", units=[4], skip="shared")
    model = build_model(spec, (5, 3), (2, 2), seed=0, target_positions=(0, 1))
    assert fit_linear_skip(model, x, y)
    # One ridge map (L -> T) fitted on both targets' windows stacked, by hand.
    rows = np.concatenate([x[:, :, 0], x[:, :, 1]]).astype(np.float64)  # (2W, L)
    design = np.hstack([rows, np.ones((len(rows), 1))])
    answers = np.concatenate([y[:, :, 0], y[:, :, 1]])  # (2W, T)
    penalty = 1e-3 * np.eye(6)
    penalty[-1, -1] = 0.0
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ answers)
    kernel, bias = model.get_layer(SHARED_SKIP_LAYER).get_weights()
    np.testing.assert_allclose(kernel, coef[:-1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bias, coef[-1], rtol=1e-4, atol=1e-6)
    expected = np.stack([np.c_[x[:, :, k], np.ones(60)] @ coef for k in (0, 1)], -1)
    np.testing.assert_allclose(predict(model, x), expected, rtol=1e-4, atol=1e-5)
    model.save(tmp_path / "shared.keras")
    loaded = keras.saving.load_model(tmp_path / "shared.keras", safe_mode=True)
    np.testing.assert_allclose(predict(loaded, x), predict(model, x), rtol=1e-6)


def test_auto_picks_the_setting_whose_linear_fit_validates_best():
    from components.models.selection import resolve_auto

    spec = WindowSpec(input_width=6, horizon=1)
    rng = np.random.default_rng(4)
    ar = np.zeros((400, 1))  # AR(1) reverting to 0, then to 10 after row 250
    for t in range(1, 400):
        ar[t] = 0.8 * ar[t - 1] + 0.2 * (10.0 if t >= 250 else 0.0) + rng.normal()
    cycle = np.sin(np.arange(400) / 3.0)[:, None] + 0.05 * rng.normal(size=(400, 1))

    def windows(rows):
        train = make_windows(rows[:200], rows[:200], spec)
        return train, make_windows(rows[300:], rows[300:], spec)

    auto = ModelSpec(window_norm="auto", skip="auto")
    drifting, choice = resolve_auto(auto, *windows(ar), (0,))
    assert drifting.window_norm in ("last", "revin")  # `none` reverts to 0
    assert set(choice.scores) == {
        f"{n}/{s}" for n in ("none", "last", "revin") for s in ("linear", "shared")
    }
    assert choice.scores[f"{drifting.window_norm}/{drifting.skip}"] == min(
        choice.scores.values()
    )
    no_positions, choice = resolve_auto(auto, *windows(cycle), ())
    assert (no_positions.window_norm, no_positions.skip) == ("none", "linear")
    assert set(choice.scores) == {"none/linear"}
    fixed = ModelSpec(window_norm="last", skip="linear")
    assert resolve_auto(fixed, *windows(cycle), (0,)) == (fixed, None)


def test_auto_settings_never_refuse_a_target_that_is_not_a_feature():
    auto = ModelSpec(window_norm="auto", skip="auto")
    assert target_positions(["a"], ["b"], auto) == ()
    assert target_positions(["a", "b"], ["b"], auto) == (1,)
