"""Quantile forecasts: the pinball loss against NumPy, a head that never
crosses, trained quantiles near the true ones, conformalized quantile
regression, saving, and a flow that serves the quantile columns."""

import keras
import mlflow
import numpy as np
import pytest
from conftest import make_series, write_experiment
from mlflow import MlflowClient
from scipy import stats

from components.common.errors import ConfigError
from components.config.loading import load_experiment
from components.config.schema import ModelSpec, TrainSpec, WindowSpec
from components.data.windowing import make_windows
from components.evaluation.evaluate import fit_linear_baseline, predict_linear_baseline
from components.evaluation.intervals import (
    Calibration,
    central_pairs,
    conformal_shifts,
    pinball_loss,
    quantile_metrics,
    shifted_quantiles,
)
from components.models import build_model, model_kinds, predict, predict_all
from components.models.quantiles import PinballLoss
from components.models.skip import fit_linear_skip
from components.training import fit as training
from components.training.compiled_loop import materialize

LEVELS = [0.1, 0.5, 0.9]


def test_the_pinball_loss_equals_a_numpy_reference():
    rng = np.random.default_rng(0)
    levels = [0.05, 0.3, 0.5, 0.95]
    y = rng.normal(size=(16, 3, 2)).astype("float32")
    pred = rng.normal(size=(16, 3, 2, 4)).astype("float32")
    expected = np.mean(
        [pinball_loss(y, pred[..., j], q) for j, q in enumerate(levels)]
    )
    by_hand = np.mean(
        [
            np.where(y >= pred[..., j], q * (y - pred[..., j]), (1 - q) * (pred[..., j] - y))
            for j, q in enumerate(levels)
        ]
    )
    got = float(PinballLoss(levels)(y, pred))
    assert got == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(by_hand, rel=1e-6)
    # at the median alone it is half the absolute error
    half_mae = 0.5 * np.abs(y - pred[..., 2]).mean()
    assert float(PinballLoss([0.5])(y, pred[..., 2:3])) == pytest.approx(half_mae, rel=1e-5)


@pytest.mark.parametrize("kind", model_kinds())
def test_quantiles_never_cross_for_random_weights_and_inputs(kind):
    spec = ModelSpec(
        kind=kind, units=[8], quantiles=[0.02, 0.1, 0.25, 0.75, 0.9, 0.98],
        skip="linear", window_norm="revin",
    )  # fmt: skip
    model = build_model(spec, (6, 2), (3, 2), seed=1, target_positions=(0, 1))
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(scale=3.0, size=w.shape) for w in model.get_weights()])
    x = (rng.normal(size=(64, 6, 2)) * 10).astype("float32")
    out = predict_all(model, x)
    assert out.shape == (64, 3, 2, 7)  # the median is added to the levels
    assert (np.diff(out, axis=-1) >= 0).all()
    np.testing.assert_array_equal(predict(model, x), out[..., 3])


def _ar_rows(noise: str, n: int, seed: int) -> tuple[np.ndarray, callable]:
    """An AR(1) series x_t = 0.8 x_{t-1} + e_t, and the quantile function
    of e_t (so the true quantiles of the next value are known)."""
    rng = np.random.default_rng(seed)
    if noise == "gaussian":
        draw, ppf = rng.normal(scale=0.5, size=n), stats.norm(scale=0.5).ppf
    else:  # right-skewed, mean 0
        draw = 0.5 * (rng.gamma(2.0, size=n) - 2.0)
        ppf = lambda q: 0.5 * (stats.gamma(2.0).ppf(q) - 2.0)  # noqa: E731
    rows = np.zeros(n)
    for t in range(1, n):
        rows[t] = 0.8 * rows[t - 1] + draw[t]
    return rows[:, None].astype("float32"), ppf


@pytest.mark.parametrize("noise", ["gaussian", "skewed"])
def test_trained_quantiles_land_near_the_true_ones(noise):
    window = WindowSpec(input_width=4, horizon=1)
    rows, ppf = _ar_rows(noise, 6000, seed=3)
    train, val, test = rows[:4000], rows[4000:5000], rows[5000:]
    spec = ModelSpec(kind="mlp", units=[16], quantiles=LEVELS, skip="linear")
    model = build_model(spec, (4, 1), (1, 1), seed=2)
    train_spec = TrainSpec(epochs=60, batch_size=64, learning_rate=0.01, patience=10)
    training.compile_model(model, train_spec)
    x_train, y_train = make_windows(train, train, window)
    fit_linear_skip(model, x_train, y_train)
    result = training.fit_model(
        model,
        materialize(train, train, window, shuffle=True, seed=1),
        materialize(val, val, window),
        train_spec,
    )
    assert result.loop == "compiled"
    x, y = make_windows(test, test, window)
    out = predict_all(model, x)[:, 0, 0]  # (W, Q)
    truth = 0.8 * x[:, -1, :] + ppf(np.array(LEVELS))[None]  # (W, Q)
    assert np.abs(out - truth).mean(axis=0).max() < 0.12  # noise scale 0.5
    inside = (y[:, 0, 0] >= out[:, 0]) & (y[:, 0, 0] <= out[:, 2])
    assert inside.mean() == pytest.approx(0.8, abs=0.05)


def test_the_linear_skip_starts_the_median_at_the_least_squares_fit():
    rows, _ = _ar_rows("gaussian", 500, seed=4)
    window = WindowSpec(input_width=4, horizon=2)
    x, y = make_windows(rows, rows, window)
    spec = ModelSpec(kind="gru", units=[8], quantiles=LEVELS, skip="linear")
    model = build_model(spec, (4, 1), (2, 1), seed=2)
    assert fit_linear_skip(model, x, y)
    expected = predict_linear_baseline(fit_linear_baseline(x, y), x, (2, 1))
    np.testing.assert_allclose(predict(model, x), expected, rtol=1e-4, atol=1e-4)


def test_conformal_shifts_bring_coverage_to_nominal_on_unseen_windows():
    rng = np.random.default_rng(0)
    levels = [0.05, 0.1, 0.5, 0.9, 0.95]
    too_narrow = stats.norm(scale=0.5).ppf(levels)  # the truth has scale 1
    lead_scale = np.array([1.0, 3.0])[None, :, None]  # the error grows with the lead
    calib, test = rng.normal(size=(600, 2, 1)), rng.normal(size=(5000, 2, 1))
    calib, test = calib * lead_scale, test * lead_scale
    quantiles = lambda n: np.broadcast_to(too_narrow, (n, 2, 1, 5))  # noqa: E731
    before = quantile_metrics(test, quantiles(5000), levels)
    assert before["test_coverage_80"] < 0.6
    shifts = conformal_shifts(calib, quantiles(600), levels)
    after = quantile_metrics(test, shifted_quantiles(quantiles(5000), shifts, levels), levels)
    for name, level in (("80", 0.8), ("90", 0.9)):
        assert after[f"test_coverage_{name}"] == pytest.approx(level, abs=0.03)
        for h in (1, 2):
            assert after[f"test_coverage_{name}_h{h}"] == pytest.approx(level, abs=0.04)
    assert after["test_wql"] < before["test_wql"]
    assert after["test_interval_score_80_raw"] < before["test_interval_score_80_raw"]


def test_narrowing_a_pair_past_its_neighbour_never_crosses():
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    quantiles = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 1, 5)
    shifts = np.zeros((5, 1, 1))
    shifts[0], shifts[4] = 1.5, -1.5  # the 80 % pair pulled inside the 50 %
    moved = shifted_quantiles(quantiles, shifts, levels)
    np.testing.assert_array_equal(moved.ravel(), [-1.0, -1.0, 0.0, 1.0, 1.0])
    assert central_pairs(levels) == [(0.5, 1, 3), (0.8, 0, 4)]


def test_the_wql_is_twice_the_pinball_sum_over_the_absolute_actuals():
    actual = np.array([1.0, -2.0, 4.0]).reshape(3, 1, 1)
    quantiles = np.stack([actual - 1, actual, actual + 1], axis=-1)  # (3, 1, 1, 3)
    metrics = quantile_metrics(actual, quantiles, LEVELS)
    # level 0.1 under by 1 each: 0.1; 0.9 over by 1 each: 0.1; median exact
    assert metrics["test_pinball_q0.1_raw"] == pytest.approx(0.1)
    assert metrics["test_pinball_raw"] == pytest.approx(0.2 / 3)
    assert metrics["test_wql"] == pytest.approx(2 * (0.3 + 0 + 0.3) / 3 / 7)
    assert metrics["test_coverage_80"] == 1.0


def test_a_quantile_model_saves_and_loads_with_safe_mode(tmp_path):
    spec = ModelSpec(kind="seq2seq", units=[8], quantiles=LEVELS, window_norm="last")
    model = build_model(spec, (6, 1), (3, 1), seed=1, target_positions=(0,))
    training.compile_model(model, TrainSpec())
    model.save(tmp_path / "q.keras")
    loaded = keras.saving.load_model(tmp_path / "q.keras", safe_mode=True)
    x = np.random.default_rng(0).normal(size=(5, 6, 1)).astype("float32")
    np.testing.assert_allclose(predict_all(loaded, x), predict_all(model, x), rtol=1e-6)
    assert loaded.loss.levels == LEVELS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.quantiles=[]"], "at least one level"),
        (["model.quantiles=[0.9, 0.1]"], "strictly increasing"),
        (["model.quantiles=[0.0, 0.5]"], "strictly between 0 and 1"),
        (["model.quantiles=[0.5, 1.2]"], "strictly between 0 and 1"),
        (["model.quantiles=[0.1, 0.9]", "data.transform=diff"], "data.transform: diff"),
    ],
)
def test_bad_quantile_settings_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match="model.quantiles") as caught:
        load_experiment("default", overrides)
    assert message in str(caught.value)


def test_a_quantile_run_logs_its_scores_and_serves_quantile_columns(
    prefect_api, tmp_path, mlflow_uri
):
    from flows.train import train_flow

    data = tmp_path / "series.csv"
    make_series(300).to_csv(data, index=False)
    path = write_experiment(
        tmp_path / "q.yaml",
        f"""
data: {{path: {data}, targets: [a]}}
split: {{val: 80, test: 60}}
window: {{input_width: 8, horizon: 2}}
model: {{kind: gru, units: [8], quantiles: [0.05, 0.1, 0.9, 0.95]}}
train: {{epochs: 8}}
evaluate: {{classical: []}}
tracking: {{uri: "{mlflow_uri}", experiment: q}}
""",
    )
    result = train_flow(load_experiment(path))
    run = MlflowClient(mlflow_uri).get_run(result.run_id)
    assert run.info.run_name == "gru · quantiles · q"  # says so in the UI
    assert "Quantile forecasts at levels 0.05, 0.1, 0.9, 0.95" in (
        run.data.tags["mlflow.note.content"]
    )
    metrics = run.data.metrics
    assert {"test_wql", "test_wql_h2", "test_pinball_q0.05_raw", "test_pinball_raw",
            "test_coverage_80", "test_coverage_90", "test_interval_score_90_raw",
            "test_mse"} <= set(metrics)  # fmt: skip
    assert metrics["test_width_90_raw"] > metrics["test_width_80_raw"]
    forecaster = result.forecaster
    assert isinstance(forecaster.calibration, Calibration)
    assert forecaster.calibration.served == (0.05, 0.1, 0.9, 0.95)

    mlflow.set_tracking_uri(mlflow_uri)
    served = mlflow.pyfunc.load_model(result.forecaster_uri)
    frame = make_series(300)
    out = served.predict(frame)
    columns = ["a_q0.05", "a_q0.1", "a", "a_q0.9", "a_q0.95"]
    assert [c for c in out.columns if c.startswith("a")] == ["a", *columns[:2], *columns[3:]]
    assert (np.diff(out[columns].to_numpy(), axis=1) >= 0).all()
    schema = served.metadata.get_output_schema()
    assert schema is not None and "a_q0.95" in schema.input_names()


def test_a_quantile_panel_retrains_on_wql_and_serves_per_series_quantiles(
    prefect_api, mlflow_uri
):
    """The fertility panel (210 countries): a quantile GRU calibrated in each
    series' scale, gated on the holdout wQL, served for a few countries."""
    from components.data.ingest import read_raw
    from components.tracking import packaging
    from flows.retrain import retrain_flow

    config = load_experiment(
        "fertility",
        [f"tracking.uri={mlflow_uri}", "train.epochs=3", "model.units=[8]",
         "model.quantiles=[0.1, 0.9]", "retrain.metric=wql"],
    )  # fmt: skip
    outcome = retrain_flow(config)
    assert outcome.decision == "promoted", outcome.reason
    assert "holdout wql" in outcome.reason
    client = MlflowClient(mlflow_uri)
    version = client.get_model_version(config.registered_model_name, outcome.version)
    assert {"holdout_wql_scaled", "holdout_coverage_80"} <= set(version.tags)
    run = client.get_run(outcome.run_id).data.metrics
    assert 0.5 < run["test_coverage_80"] <= 1 and run["test_wql"] > 0

    model = packaging.load_model(f"models:/{config.registered_model_name}/1", mlflow_uri)
    raw = read_raw(config.data)
    served = model.predict(raw[raw["country"].isin(["FRA", "NER"])])
    assert {"fertility_q0.1", "fertility", "fertility_q0.9"} <= set(served.columns)
    assert (served["fertility_q0.1"] <= served["fertility"]).all()
    assert (served["fertility"] <= served["fertility_q0.9"]).all()
    width = (served["fertility_q0.9"] - served["fertility_q0.1"]).groupby(served["series"])
    assert width.mean()["NER"] != pytest.approx(width.mean()["FRA"])  # own scale each


def test_the_leaderboard_carries_the_quantile_scores():
    from components.evaluation.leaderboard import interval_metrics_in

    logged = {"test_mse": 1.0, "test_wql": 0.1, "test_wql_h2": 0.2, "test_pinball_raw": 0.3,
              "test_pinball_q0.1_raw": 0.4, "test_coverage_80": 0.8,
              "test_coverage_80_h1": 0.7, "test_interval_score_80_raw": 2.0}  # fmt: skip
    assert interval_metrics_in(logged) == [
        "test_coverage_80", "test_interval_score_80_raw", "test_pinball_raw", "test_wql",
    ]  # fmt: skip
