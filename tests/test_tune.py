"""Tuning: the search space, pruning on validation loss, and the real tune flow
(nested trial runs, no test metric anywhere, the best written as an experiment)."""

import json

import optuna
import pytest
from conftest import child_runs, run_cli_here, write_experiment
from mlflow import MlflowClient

from components.common.errors import ConfigError
from components.config.loading import load_experiment
from components.training import search


def _settings(kind: str, seed: int, max_width: int = 40) -> list[dict]:
    config = load_experiment("gas_furnace", [f"model.kind={kind}"])
    study = search.new_study(seed)
    picks = []
    for _ in range(8):
        trial = study.ask()
        picks.append(search.suggest(trial, config, max_width))
        study.tell(trial, 1.0)
    return picks


def test_the_space_per_kind_and_the_seed_repeats_it():
    mlp = _settings("mlp", seed=1, max_width=12)
    assert _settings("mlp", seed=1, max_width=12) == mlp
    assert _settings("mlp", seed=2, max_width=12) != mlp
    for pick in mlp:
        units = pick["model.units"]
        assert 1 <= len(units) <= 3 and len(set(units)) == 1 and 8 <= units[0] <= 128
        assert 5 <= pick["window.input_width"] <= 12  # n/2 .. min(2n, what fits)
        assert 1e-3 <= pick["train.learning_rate"] <= 3e-2
        assert 0 <= pick["model.dropout"] <= 0.3 and "model.attention" not in pick
    seq2seq = _settings("seq2seq", seed=1)
    assert all(len(p["model.units"]) <= 2 for p in seq2seq)
    assert {p["model.attention"] for p in seq2seq} <= {"none", "dot", "additive"}


def test_a_trial_behind_the_median_is_pruned_after_the_warmup():
    study = search.new_study(seed=0, warmup_epochs=2)
    for _ in range(2):  # two finished trials set the median
        trial = study.ask()
        hook = search.PruneOnValLoss(trial)
        for epoch in range(1, 6):
            hook(epoch, {"val_loss": 1.0 / epoch})
        study.tell(trial, 0.2)
    trial = study.ask()
    hook = search.PruneOnValLoss(trial)
    hook(1, {"val_loss": 5.0})
    hook(2, {"val_loss": 5.0})  # still warming up: not pruned
    with pytest.raises(optuna.TrialPruned, match="epoch 3"):
        hook(3, {"val_loss": 5.0})


def _experiment(tmp_path, series_csv, mlflow_uri, split="{val: 40, test: 40}"):
    return write_experiment(
        tmp_path / "tune.yaml",
        f"""
data: {{path: {series_csv}}}
split: {split}
window: {{input_width: 12}}
model: {{units: [6]}}
train: {{epochs: 4, patience: 0}}
tracking: {{uri: "{mlflow_uri}", experiment: tune}}
""",
    )


def test_tune_nests_trials_never_scores_test_and_writes_the_best(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    path = _experiment(tmp_path, series_csv, mlflow_uri)
    output = tmp_path / "tuned.yaml"
    done = run_cli_here(
        ["tune", str(path), "--model", "gru", "--trials", "3"]
        + ["--output", str(output), "--json"]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert f"wrote {output}" in done.stdout

    client = MlflowClient(mlflow_uri)
    parent = client.get_run(result["parent_run_id"])
    trials = child_runs(client, parent)
    assert parent.info.status == "FINISHED"
    assert sorted(t.data.params["trial.number"] for t in trials) == ["0", "1", "2"]
    for run in [parent, *trials]:
        assert not [m for m in run.data.metrics if "test" in m], run.data.metrics
    finished = [t for t in trials if t.info.status == "FINISHED"]
    best = min(finished, key=lambda t: t.data.metrics["best_val_loss"])
    assert result["best"]["run_id"] == best.info.run_id
    assert parent.data.tags["best_trial_run"] == best.info.run_id
    history = client.get_metric_history(best.info.run_id, "val_loss")
    assert min(m.value for m in history) == pytest.approx(
        best.data.metrics["best_val_loss"]
    )

    tuned = load_experiment(str(output))
    assert tuned.name == "tune_gru_tuned" and tuned.model.kind == "gru"
    assert str(tuned.model.units) == best.data.params["model.units"]
    assert tuned.train.learning_rate == float(best.data.params["train.learning_rate"])
    assert tuned.window.input_width == int(best.data.params["window.input_width"])
    assert tuned.split == load_experiment(str(path)).split  # the rest is unchanged


def test_tune_without_a_validation_split_is_refused_before_any_run(
    prefect_api, tmp_path, series_csv, mlflow_uri
):
    from flows.tune import tune_flow

    path = _experiment(tmp_path, series_csv, mlflow_uri, split="{val: 0, test: 40}")
    with pytest.raises(ConfigError, match="split.val"):
        tune_flow(load_experiment(str(path)), "mlp", 2)
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("tune")
    assert experiment is None or not client.search_runs([experiment.experiment_id])


def test_cli_tune_rejects_an_unknown_model():
    done = run_cli_here(["tune", "gas_furnace", "--model", "tcn"])
    assert done.returncode == 2 and "`--model`" in done.stderr
