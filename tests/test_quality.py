"""Guard rails: the network against persistence and the linear baseline on the
validation split, said in the terminal, in --json and as run tags."""

import json

import numpy as np
import pandas as pd
from conftest import run_cli_here, write_experiment
from mlflow import MlflowClient

from components.evaluation.quality import check_each_kind, check_validation


def _metrics(model, persistence, linear):
    return {
        "val_mse": model,
        "baseline_persistence_val_mse": persistence,
        "baseline_linear_val_mse": linear,
    }


def test_the_check_names_each_reference_the_network_does_not_beat():
    assert check_validation(_metrics(0.1, 0.5, 0.2)).message is None
    both = check_validation(_metrics(0.6, 0.5, 0.5), "gru", windows=6)
    assert both.losses == ("persistence", "linear")
    assert both.message.startswith("gru (val mse 0.6) does not beat persistence (0.5)")
    assert "on the validation split (6 windows):" in both.message
    assert "`model.window_norm=last`" in both.message
    assert check_validation(_metrics(0.304, 0.5, 0.3)).message is None  # level
    linear_only = check_validation(_metrics(0.306, 0.5, 0.3))  # 1.2 points below
    assert linear_only.losses == ("linear",) and "longer `window.input_width`" in (
        linear_only.message
    )
    assert check_validation(_metrics(0.496, 0.5, 0.6)).losses == ("persistence",)
    assert check_validation(_metrics(0.494, 0.5, 0.6)).message is None
    assert both.tags == {"quality_check": "fail", "quality_warning": both.message}
    by_kind = check_each_kind(
        [("mlp", _metrics(0.4, 0.5, 0.45)), ("mlp", _metrics(0.6, 0.5, 0.45)),
         ("gru", _metrics(0.1, 0.5, 0.45)), ("lstm", {"val_mse": 1.0})]
    )  # fmt: skip
    assert sorted(by_kind) == ["gru", "mlp"]  # lstm has no validation metrics
    assert by_kind["mlp"].losses == ("persistence", "linear")  # mean 0.5
    assert by_kind["gru"].message is None


def _series_experiment(tmp_path, mlflow_uri, name, values):
    data = tmp_path / f"{name}.csv"
    pd.DataFrame({"value": values}).to_csv(data, index=False)
    return write_experiment(
        tmp_path / f"{name}.yaml",
        f"""
name: {name}
data: {{path: {data}}}
split: {{val: 60, test: 60}}
window: {{input_width: 12, horizon: 1}}
model: {{kind: mlp, units: [8]}}
train: {{epochs: 20}}
tracking: {{uri: "{mlflow_uri}"}}
""",
    )


def test_the_guard_rail_fires_on_a_random_walk_and_stays_silent_on_a_sine(
    prefect_api, tmp_path, mlflow_uri
):
    rng = np.random.default_rng(7)
    walk = np.cumsum(rng.normal(size=400))
    sine = np.sin(2 * np.pi * np.arange(400) / 25)
    client = MlflowClient(mlflow_uri)
    for name, values, fires in [("walk", walk, True), ("sine", sine, False)]:
        path = _series_experiment(tmp_path, mlflow_uri, name, values)
        done = run_cli_here(["train", str(path), "--json"])
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        tags = client.get_run(result["run_id"]).data.tags
        if fires:
            (warning,) = result["warnings"]
            assert "does not beat persistence" in warning
            assert tags["quality_check"] == "fail"
            assert tags["quality_warning"] == warning
            summary = run_cli_here(["train", str(path), "train.epochs=3"])
            assert "! mlp (val mse" in summary.stdout
        else:
            assert result["warnings"] == [], result["warnings"]
            assert tags["quality_check"] == "pass" and "quality_warning" not in tags
            assert result["metrics"]["val_mse"] < 0.1 * (
                result["metrics"]["baseline_persistence_val_mse"]
            )
