"""Several `rnnflow train` processes at once on one sqlite MLflow store."""

import json
import os
import subprocess
import sys

from conftest import REPO, write_experiment
from mlflow import MlflowClient


def test_four_concurrent_trainings_on_one_fresh_sqlite_store(
    prefect_api, tmp_path, series_csv
):
    store = tmp_path / "shared" / "mlflow.db"  # not there yet: they race to create it
    uri = f"sqlite:///{store}"
    experiment = write_experiment(
        tmp_path / "busy.yaml",
        f"""
data: {{path: {series_csv}}}
split: {{val: 40, test: 40}}
window: {{input_width: 12}}
model: {{kind: mlp, units: [8]}}
train: {{epochs: 8, patience: 0, verbose_every: 0}}
tracking: {{uri: "{uri}", experiment: busy}}
""",
    )
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "train",
                str(experiment),
                f"train.seed={seed}",
                "--json",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for seed in range(4)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert "database is locked" not in err
    run_ids = {json.loads(out.strip().splitlines()[-1])["run_id"] for out, _ in outputs}
    assert len(run_ids) == 4
    client = MlflowClient(uri)
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(
            range(1, 9)
        )  # every epoch's metric arrived
        assert {"test_mse", "test_mse_raw", "epochs_trained"} <= set(run.data.metrics)
        assert run.data.params["train.seed"] in {"0", "1", "2", "3"}
