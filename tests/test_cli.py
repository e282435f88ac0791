"""The CLI shell: fast help, a real MLflow UI on loopback, the human summary."""

import os
import subprocess
import sys

import pytest
from conftest import REPO, free_port, wait_for

from flows.results import TrainResult


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["ui", "--help"]])
def test_help_imports_no_heavy_library(args):
    script = (
        "import sys\nfrom flows.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'prefect', 'mlflow') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO
    )
    assert "usage: rnnflow" in done.stdout
    assert "HEAVY []" in done.stdout


def test_ui_serves_the_store_on_loopback(tmp_path):
    port = free_port()
    env_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "ui", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "MLFLOW_TRACKING_URI": env_uri},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = wait_for(f"http://127.0.0.1:{port}/health", seconds=90)
        assert body.strip() == "OK"
        for _ in range(5):
            wait_for(f"http://127.0.0.1:{port}/health", seconds=10)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"MLflow UI on http://127.0.0.1:{port}" in output
    assert "GET /health" not in output  # quiet: no line per request


def test_ui_binds_loopback_unless_told_and_then_warns():
    from flows.cli import _parser, _ui_plan

    uri = "sqlite:////data/mlruns/mlflow.db"
    command, warning = _ui_plan(_parser().parse_args(["ui"]), uri)
    assert command[command.index("--host") + 1] == "127.0.0.1" and warning is None
    assert command[command.index("--default-artifact-root") + 1] == (
        "file:///data/mlruns/artifacts"
    )
    args = _parser().parse_args(["ui", "--host", "0.0.0.0", "--port", "5055"])
    command, warning = _ui_plan(args, uri)
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert "0.0.0.0" in warning and "no authentication" in warning


def test_human_summary_puts_baselines_beside_the_model():
    metrics = {
        f"{p}{m}": v
        for p, v in [
            ("test_", 0.1),
            ("baseline_persistence_test_", 0.3),
            ("baseline_linear_test_", 0.2),
        ]
        for m in ("mse", "mae", "mse_raw", "mae_raw")
    }
    metrics.update(epochs_trained=12, train_seconds=3.5)
    text = TrainResult(
        run_id="abc", experiment="x", experiment_id="3", status="FINISHED",
        tracking_uri="sqlite:///m.db", model_uri=None, forecaster_uri=None,
        parameters=10, metrics=metrics, warnings=["odd"],
    ).to_text()  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "run abc (FINISHED) in experiment 'x'"
    assert lines[2].split()[0] == "model" and lines[2].split()[1] == "0.1000"
    assert lines[3].startswith("persistence") and lines[4].startswith("linear AR")
    assert "rnnflow ui" in lines[-2] and "12 epochs" in lines[-2]
    assert "#/experiments/3/runs?viewStateShareKey=rnnflow" in lines[-2]
    assert lines[-1] == "! odd"


def test_overrides_may_follow_options():
    from flows.cli import _parse, _parser

    args = _parse(
        _parser(),
        ["compare", "x", "--models", "mlp", "a.b=1", "--seeds", "2", "c=[1, 2]"],
    )
    assert args.experiment == "x" and args.models == "mlp" and args.seeds == 2
    assert args.overrides == ["a.b=1", "c=[1, 2]"]
    with pytest.raises(SystemExit):
        _parse(_parser(), ["show", "x", "--bogus"])
    with pytest.raises(SystemExit):
        _parse(_parser(), ["ui", "a.b=1"])  # ui takes no overrides


def test_a_trainings_overrides_name_its_run_so_runs_can_be_told_apart():
    from components.tracking.describe import run_title
    from flows.cli import _load, _parse, _parser

    plain = _load(_parse(_parser(), ["train", "gas_furnace"]))
    assert run_title(plain) == "lstm · gas_furnace"
    tuned = _load(_parse(_parser(), [
        "train", "gas_furnace", "train.epochs=30", "model.kind=gru",
        "tracking.uri=sqlite:////tmp/secret.db",
    ]))  # fmt: skip
    assert tuned.tracking.run_label == "train.epochs=30 model.kind=gru"
    assert run_title(tuned) == "gru · gas_furnace · train.epochs=30 model.kind=gru"
    assert tuned.training_fields() == _load(_parse(_parser(), [
        "train", "gas_furnace", "train.epochs=30", "model.kind=gru",
    ])).training_fields()  # the label never changes what is trained (or resumed)
