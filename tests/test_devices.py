"""`train.devices`: one model data-parallel on several devices of one host
(tf.distribute.MirroredStrategy), tested on this CPU split into two logical
devices (a fresh process: the split must come before TensorFlow starts)."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, run_cli

# Runs in a fresh interpreter: two logical CPUs, then the checks, then rnnflow.
_TWO_CPUS = """
import json, os, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from components.training import devices
strategy = devices.strategy_for("all")
batches = strategy.experimental_distribute_dataset(
    tf.data.Dataset.range(64).batch(32))
first = next(iter(batches))
sizes = [int(t.shape[0]) for t in strategy.experimental_local_results(first)]
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "sizes": sizes}))
try:
    devices.devices_of(3)
except Exception as exc:
    print(json.dumps({"refused": str(exc)}))
from flows.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_two_devices_split_each_batch_train_and_serve_on_one(
    prefect_api, mlflow_uri, tmp_path
):
    common = [f"tracking.uri={mlflow_uri}", "train.epochs=8"]
    done = subprocess.run(
        [sys.executable, "-c", _TWO_CPUS, "--local", "train", "gas_furnace",
         "train.devices=2", *common, "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**__import__("os").environ, "PREFECT_API_URL": prefect_api},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert lines[0] == {"replicas": 2, "sizes": [16, 16]}  # the global batch, split
    assert "this machine has 2" in lines[1]["refused"]
    result = lines[-1]
    assert "mirrored on 2 devices" in done.stderr and "training loop: fit" in done.stderr
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    losses = [m.value for m in client.get_metric_history(result["run_id"], "loss")]
    assert len(losses) == 8 and losses[-1] < losses[0]  # it learned
    assert client.get_run(result["run_id"]).data.params["train.devices"] == "2"
    # the saved model serves in a process with one device
    served = run_cli(
        ["--local", "predict", "gas_furnace", "--model-uri",
         f"runs:/{result['run_id']}/forecaster", *common[:1], "--json"],
        env={"PREFECT_API_URL": prefect_api},
    )  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    assert len(json.loads(served.stdout.strip().splitlines()[-1])["forecast"]) == 1


def test_devices_and_the_compiled_loop_are_refused_together():
    from components.common.errors import ConfigError
    from components.config.loading import load_experiment

    with pytest.raises(ConfigError, match="compiled loop does not run"):
        load_experiment("gas_furnace", ["train.devices=2", "train.loop=compiled"])


def test_several_steps_per_call_are_refused_with_devices():
    from components.common.errors import ConfigError
    from components.config.loading import load_experiment

    with pytest.raises(ConfigError, match="one step per call under a distribution"):
        load_experiment("gas_furnace", ["train.devices=2", "train.steps_per_execution=8"])


def test_auto_steps_per_execution_is_32_on_one_device_and_1_on_several():
    import keras

    from components.config.schema import TrainSpec
    from components.training.fit import compile_model

    for devices, expected in ((1, 32), (2, 1)):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        compile_model(model, TrainSpec(devices=devices, loop="fit"))
        assert model.steps_per_execution == expected
