"""Resumable training: a killed training goes on from its last epoch.

In-process checks compare a training interrupted and resumed with one that ran
straight through (same weights, optimizer state, early stopping, data order);
the end-to-end check kills a real `rnnflow train` process with SIGKILL.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, make_series, write_experiment
from mlflow import MlflowClient

from components import tracking
from components.config.loading import load_experiment
from components.config.schema import ModelSpec, TrainSpec, WindowSpec
from components.data.windowing import make_dataset
from components.models import build_model
from components.training import checkpoint
from components.training import fit as training

WINDOW = WindowSpec(input_width=8, horizon=1)


class _Interrupt(BaseException):
    """Stands in for a kill: not an Exception, like KeyboardInterrupt."""


def _train(spec, folder=None, resume=None, stop_after=None):
    rows = make_series(160).to_numpy(np.float32)
    rows = (rows - rows.mean(0)) / rows.std(0)
    start = resume.epoch if resume else 0
    train_ds = make_dataset(
        rows[:120], rows[:120], WINDOW, 16, shuffle=True, seed=3, start_epoch=start
    )
    val_ds = make_dataset(rows[120:], rows[120:], WINDOW, 16)
    model = build_model(ModelSpec(kind="mlp", units=[16]), (8, 2), (1, 2), seed=3)
    training.compile_model(model, spec)

    def interrupt(epoch, logs):
        if epoch == stop_after:
            raise _Interrupt

    hooks = [interrupt] if stop_after else []
    result = training.fit_model(model, train_ds, val_ds, spec, hooks, folder, resume)
    return model, result


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    spec = TrainSpec(epochs=14, patience=3, learning_rate=0.05)
    straight, expected = _train(spec)
    with checkpoint.claim(tmp_path, "key", "run-1") as folder:
        with pytest.raises(_Interrupt):
            _train(spec, folder, stop_after=6)
    with checkpoint.claim(tmp_path, "key", "run-2") as folder:
        state = folder.load()
        assert 2 <= state.epoch <= 5 and state.run_id == "run-1"  # 6 never ended
        resumed, result = _train(spec, folder, resume=state)
    assert result.resumed_from_epoch == state.epoch + 1
    assert result.epochs_trained == expected.epochs_trained
    assert result.best_epoch == expected.best_epoch
    for key in expected.history:
        np.testing.assert_allclose(
            result.history[key], expected.history[key], rtol=1e-5
        )
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_resume_restores_the_optimizer_state(tmp_path):
    spec = TrainSpec(epochs=4, patience=0, learning_rate=0.05)
    with checkpoint.claim(tmp_path, "key", "run-1") as folder:
        model, _ = _train(spec, folder)
        state = folder.load()
        saved_moments = [v.numpy() for v in model.optimizer.variables]
        fresh = build_model(ModelSpec(kind="mlp", units=[16]), (8, 2), (1, 2), seed=9)
        training.compile_model(fresh, spec)
        folder.restore(fresh, state)
    assert int(fresh.optimizer.iterations.numpy()) == int(model.optimizer.iterations)
    for a, b in zip(fresh.optimizer.variables, saved_moments, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)
    for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_for_another_model_is_refused_by_name(tmp_path):
    spec = TrainSpec(epochs=2, patience=0)
    with checkpoint.claim(tmp_path, "key", "run-1") as folder:
        _train(spec, folder)
        other = build_model(ModelSpec(kind="gru", units=[4]), (8, 2), (1, 2), seed=1)
        training.compile_model(other, spec)
        with pytest.raises(Exception, match=r"does not fit this model.*train.resume"):
            folder.restore(other, folder.load())


def test_a_folder_in_use_is_not_shared(tmp_path):
    with checkpoint.claim(tmp_path, "key", "a") as first:
        (first.path / checkpoint.STATE_FILE).write_text("{}")
        with checkpoint.claim(tmp_path, "key", "b") as second:
            assert first.shared and not second.shared
            assert second.path != first.path
        assert not second.path.exists()  # a private folder is removed
        assert sorted(p.name for p in tmp_path.iterdir()) == ["key", "key.lock"]
    with checkpoint.claim(tmp_path, "key", "c") as again:
        assert again.shared and again.path == first.path  # the lock was released
        again.clear()
    assert not again.path.exists()  # nothing left to resume: the folder goes


def test_sigkill_mid_training_then_rerun_resumes_and_closes_the_stale_run(
    prefect_api, tmp_path, mlflow_uri
):
    from flows.train import train_flow

    series_csv = tmp_path / "series.csv"
    make_series().to_csv(series_csv, index=False)
    path = write_experiment(
        tmp_path / "resume.yaml",
        f"""
data: {{path: {series_csv}}}
split: {{val: 40, test: 40}}
window: {{input_width: 12, horizon: 1}}
model: {{kind: gru, units: [4]}}
train: {{epochs: 30, patience: 0, learning_rate: 0.01, verbose_every: 1}}
tracking: {{uri: "{mlflow_uri}", experiment: resume-test}}
""",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "train", str(path)],
        env={**os.environ, "PREFECT_API_URL": prefect_api}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen = []
    for line in process.stdout:  # well under way: epochs 1 and 2 are saved
        seen.append(line)
        if "epoch 9/30" in line:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    (state_file,) = tracking.checkpoint_root(mlflow_uri).glob("*/state.json")
    saved = json.loads(state_file.read_text())
    assert 2 <= saved["epoch"] < 30

    client = MlflowClient(mlflow_uri)
    experiment_id = client.get_experiment_by_name("resume-test").experiment_id
    (killed,) = client.search_runs([experiment_id])
    assert killed.info.status == "RUNNING"  # SIGKILL: nobody could close it
    assert killed.info.run_id == saved["run_id"]

    resumed = train_flow(load_experiment(path, ["train.verbose_every=0"]))
    assert resumed.metrics["resumed_from_epoch"] == saved["epoch"] + 1
    killed = client.get_run(killed.info.run_id)
    assert killed.info.status == "KILLED" and killed.info.end_time is not None
    assert "stale" in killed.data.tags["error"]
    assert resumed.run_id in killed.data.tags["error"]
    run = client.get_run(resumed.run_id)
    assert run.data.tags["resumed_from_run"] == killed.info.run_id
    assert run.data.metrics["resumed_from_epoch"] == saved["epoch"] + 1
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert sorted(steps) == list(range(1, 31))  # the whole curve, in one run
    assert not state_file.exists()  # complete: a rerun starts from epoch 1
