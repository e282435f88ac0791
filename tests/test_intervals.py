"""Conformal prediction intervals: the radius, coverage on data the
calibration never saw, the interval score by hand, and a flow that logs them."""

import numpy as np
import pytest
from conftest import make_series, write_experiment
from mlflow import MlflowClient

from components.config.loading import load_experiment
from components.evaluation.intervals import (
    conformal_intervals,
    conformal_radius,
    interval_metrics,
    level_name,
    windows_needed,
)


def test_the_radius_is_the_finite_sample_quantile_of_absolute_errors():
    errors = np.arange(1.0, 11.0).reshape(10, 1, 1) * np.array([1, -1] * 5).reshape(
        10, 1, 1
    )  # |errors| = 1..10
    assert conformal_radius(errors, 0.8)[0, 0] == 9.0  # ceil(11 * 0.8) = 9th
    assert conformal_radius(errors, 0.5)[0, 0] == 6.0  # ceil(5.5) = 6th
    assert conformal_radius(errors, 0.95)[0, 0] == 10.0  # rank 11 > n: the largest
    assert (windows_needed(0.8), windows_needed(0.95), windows_needed(0.5)) == (4, 19, 1)


def test_interval_score_and_coverage_by_hand():
    actual = np.array([0.0, 1.0, 3.0]).reshape(3, 1, 1)
    forecast = np.zeros((3, 1, 1))
    metrics = interval_metrics(actual, forecast, np.array([[1.0]]), 0.8)
    assert metrics["test_coverage_80"] == pytest.approx(2 / 3)
    assert metrics["test_width_80_raw"] == 2.0
    # widths 2 each; the third misses by 3 - 1 = 2 -> penalty 2 / 0.2 * 2 = 20
    assert metrics["test_interval_score_80_raw"] == pytest.approx((2 + 2 + 22) / 3)
    assert level_name(0.975) == "97.5"


@pytest.mark.parametrize("noise", ["gaussian", "skewed"])
def test_calibrated_coverage_is_near_nominal_on_unseen_windows(noise):
    rng = np.random.default_rng(0)
    draw = {
        "gaussian": lambda n: rng.normal(size=(n, 3, 2)),
        "skewed": lambda n: rng.gamma(2.0, size=(n, 3, 2)) - 2.0,
    }[noise]
    scale = np.array([1.0, 2.0, 4.0])[None, :, None]  # errors grow with the lead
    calib, test = draw(500) * scale, draw(4000) * scale
    metrics, radii = conformal_intervals(
        calib, np.zeros_like(calib), test, np.zeros_like(test), [0.8, 0.95]
    )
    assert metrics["test_coverage_80"] == pytest.approx(0.8, abs=0.03)
    assert metrics["test_coverage_95"] == pytest.approx(0.95, abs=0.02)
    for h in (1, 2, 3):  # per lead time too, since the radius is per step
        assert metrics[f"test_coverage_80_h{h}"] == pytest.approx(0.8, abs=0.04)
    assert (radii[0.95] > radii[0.8]).all() and radii[0.8].shape == (3, 2)


def test_a_training_run_logs_calibrated_intervals(prefect_api, tmp_path, mlflow_uri):
    from flows.train import train_flow

    data = tmp_path / "series.csv"
    make_series(300).to_csv(data, index=False)
    path = write_experiment(
        tmp_path / "iv.yaml",
        f"""
data: {{path: {data}}}
split: {{val: 80, test: 80}}
window: {{input_width: 8, horizon: 2}}
model: {{kind: mlp, units: [8]}}
train: {{epochs: 10}}
evaluate: {{intervals: [0.5, 0.9]}}
tracking: {{uri: "{mlflow_uri}", experiment: iv}}
""",
    )
    result = train_flow(load_experiment(path))
    metrics = MlflowClient(mlflow_uri).get_run(result.run_id).data.metrics
    for level in ("50", "90"):
        assert 0.0 < metrics[f"test_coverage_{level}"] <= 1.0
        assert {f"test_width_{level}_raw", f"test_interval_score_{level}_raw",
                f"test_coverage_{level}_h2"} <= set(metrics)  # fmt: skip
    assert metrics["test_width_90_raw"] > metrics["test_width_50_raw"]
    assert abs(metrics["test_coverage_90"] - 0.9) < 0.15  # 71 windows, noisy
    artifacts = {
        a.path
        for a in MlflowClient(mlflow_uri).list_artifacts(result.run_id, "plots")
    }
    assert {"plots/calibration.png", "plots/intervals_a.png"} <= artifacts
