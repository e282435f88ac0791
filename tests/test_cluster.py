"""The many-model work of a run on a real multi-process Dask cluster started
by the test (`dask scheduler` and two `dask worker` processes on 127.0.0.1):
backtest folds and a panel's per-series references give what the local path
gives, and a worker killed in the middle of a fold costs nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, free_port, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two one-thread workers, each its own process group."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    logs = [open(tmp_path / f"dask-{i}.log", "w") for i in range(3)]
    common = dict(cwd=REPO, env=env, stderr=subprocess.STDOUT, start_new_session=True)
    scheduler = subprocess.Popen(
        ["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], stdout=logs[0], **common,
    )  # fmt: skip
    workers = [
        subprocess.Popen(
            ["dask", "worker", address, "--nthreads", "1", "--nworkers", "1",
             "--no-dashboard", "--host", "127.0.0.1"], stdout=log, **common,
        )  # fmt: skip
        for log in logs[1:]
    ]
    from distributed import Client

    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for log in logs:
            log.close()


def _kill_a_busy_worker(address: str, process, pause: float) -> int | None:
    """SIGKILL the first worker seen busy, `pause` seconds after (inside its
    task by then), while `process` runs; its pid, or None if none got busy."""
    from distributed import Client

    with Client(address, timeout=60) as client:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                time.sleep(pause)
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                return pid
            time.sleep(0.2)
    return None


def _folds(uri: str, run_id: str) -> list[float]:
    from mlflow import MlflowClient

    history = MlflowClient(uri).get_metric_history(run_id, "backtest_fold_test_mse")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def test_backtest_folds_on_a_cluster_equal_the_local_ones_a_killed_worker_costs_nothing(
    cluster, prefect_api, tmp_path
):
    from mlflow import MlflowClient

    address, workers = cluster
    common = ["gas_furnace", "model.kind=mlp", "model.units=[8]", "train.epochs=30",
              "train.deterministic=true", "evaluate.backtest.folds=4",
              "evaluate.backtest.step=20", "evaluate.classical=[]", "--json"]  # fmt: skip
    env = {"PREFECT_API_URL": prefect_api}
    stores = {name: f"sqlite:///{tmp_path / name / 'mlflow.db'}" for name in ("a", "b")}
    for name in stores:
        (tmp_path / name).mkdir()
    local = run_cli(["--local", "train", *common, f"tracking.uri={stores['a']}"], env=env)
    assert local.returncode == 0, local.stderr[-3000:]
    expected = _folds(stores["a"], json.loads(local.stdout.splitlines()[-1])["run_id"])

    args = [sys.executable, "-m", "flows.cli", "--local", "train", *common,
            f"tracking.uri={stores['b']}", "cluster.executor=dask",
            f"cluster.address={address}"]  # fmt: skip
    remote = subprocess.Popen(
        args, cwd=REPO, env={**os.environ, **env}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    killed = _kill_a_busy_worker(address, remote, 1.0)  # inside a fold's training
    out, err = remote.communicate(timeout=600)
    assert killed is not None, "no fold ever ran on the cluster"
    assert remote.returncode == 0, err[-3000:]
    assert "backtest: 3 folds on Dask (tcp://127.0.0.1:" in err
    run_id = json.loads(out.splitlines()[-1])["run_id"]
    np.testing.assert_allclose(_folds(stores["b"], run_id), expected, rtol=1e-6)
    client = MlflowClient(stores["b"])
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["backtest_folds"] == 4
    running = client.search_runs(
        [run.info.experiment_id], "attributes.status = 'RUNNING'"
    )
    assert not running  # nothing left behind by the killed worker


def test_per_series_references_fit_on_the_cluster_like_here(cluster):
    import statsmodels.api as sm

    from components.evaluation import per_series

    address, _ = cluster
    wide = sm.datasets.fertility.load_pandas().data
    years = [c for c in wide.columns if str(c).isdigit()]
    series = [row[~np.isnan(row)] for row in wide[years].to_numpy(np.float64)[:40]]
    series = [y for y in series if len(y) > 20]
    here = [per_series.fit_series("theta", y, None) for y in series]
    there = per_series._fit_on_dask("theta", series, None, address)
    assert len(there) == len(here)
    for a, b in zip(here, there):
        assert a.label == b.label
        np.testing.assert_allclose(
            per_series.forecast_series(a, series[0], np.array([19]), 3, 0),
            per_series.forecast_series(b, series[0], np.array([19]), 3, 0),
        )


def test_tune_trials_train_on_the_cluster_and_a_killed_worker_leaves_no_run_running(
    cluster, prefect_api, tmp_path
):
    from mlflow import MlflowClient

    address, _ = cluster
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [sys.executable, "-m", "flows.cli", "--local", "tune", "gas_furnace",
            "--model", "mlp", "--trials", "4", "--output", str(tmp_path / "t.yaml"),
            "train.epochs=15", f"tracking.uri={store}", "cluster.executor=dask",
            f"cluster.address={address}", "--json"]  # fmt: skip
    tuned = subprocess.Popen(
        args, cwd=REPO, env={**os.environ, "PREFECT_API_URL": prefect_api}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    killed = _kill_a_busy_worker(address, tuned, 4.0)  # inside a trial's training
    out, err = tuned.communicate(timeout=900)
    assert killed is not None, "no trial ever ran on the cluster"
    assert tuned.returncode == 0, err[-3000:]
    assert "tune: trials 0-1 on Dask (tcp://127.0.0.1:" in err
    result = json.loads(out.strip().splitlines()[-1])
    client = MlflowClient(store)
    parent = client.get_run(result["parent_run_id"])
    trials = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    finished = [t for t in trials if t.info.status == "FINISHED"]
    assert sorted(int(t.data.params["trial.number"]) for t in finished) == [0, 1, 2, 3]
    # trained in the workers, not in the flow's process
    assert all(t.data.tags["rnnflow_worker"] != parent.data.tags["rnnflow_worker"]
               for t in finished)  # fmt: skip
    # the killed worker's run, if it had opened one, is closed KILLED, not RUNNING
    assert not [t for t in trials if t.info.status == "RUNNING"]
    best = min(finished, key=lambda t: t.data.metrics["best_val_loss"])
    assert result["best"]["run_id"] == best.info.run_id


def test_compare_children_on_the_cluster_survive_a_killed_worker_and_none_stays_running(
    cluster, prefect_api, tmp_path
):
    from mlflow import MlflowClient

    address, _ = cluster
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [sys.executable, "-m", "flows.cli", "--local", "compare", "gas_furnace",
            "--models", "mlp,gru", "--seeds", "2", "--executor", "dask",
            "--dask-address", address, "train.epochs=15", "evaluate.classical=[]",
            f"tracking.uri={store}", "--json"]  # fmt: skip
    compared = subprocess.Popen(
        args, cwd=REPO, env={**os.environ, "PREFECT_API_URL": prefect_api}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    killed = _kill_a_busy_worker(address, compared, 4.0)  # inside a child's training
    out, err = compared.communicate(timeout=900)
    assert killed is not None, "no child ever ran on the cluster"
    assert compared.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    client = MlflowClient(store)
    parent = client.get_run(result["parent_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert sorted((c.data.tags["model_kind"], c.data.tags["rnnflow.seed"]) for c in finished) == [
        ("gru", "42"), ("gru", "43"), ("mlp", "42"), ("mlp", "43")]  # fmt: skip
    assert not [c for c in children if c.info.status == "RUNNING"]
    assert all(c.data.tags["rnnflow_worker"] != parent.data.tags["rnnflow_worker"]
               for c in finished)  # fmt: skip
