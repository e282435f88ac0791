"""TFDS both ways, for real: write a snapshot with TFDS's builder, read it back
as a source, and see the MLflow run record which data it used."""

import pandas as pd
import pytest
from conftest import run_cli_here, write_experiment
from mlflow import MlflowClient

from components.common.errors import DataError
from components.config.loading import load_experiment
from components.config.schema import DataSpec
from components.data.ingest import load_series
from components.data.snapshot import read_tfds, write_snapshot


@pytest.fixture
def hourly_csv(tmp_path):
    index = pd.date_range("2024-01-01", periods=120, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {
            "when": index.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "load": range(120),
            "temp": [i % 7 * 1.5 for i in range(120)],
        }
    )
    path = tmp_path / "hourly.csv"
    frame.to_csv(path, index=False)
    return path


def test_snapshot_round_trip_keeps_rows_index_and_digest(tmp_path, hourly_csv):
    spec = DataSpec(path=str(hourly_csv), time_column="when", frequency="h")
    original = load_series(spec)
    info = write_snapshot(
        original.frame, "hourly", "1.0.0", str(tmp_path / "tfds"), original.digest
    )
    assert info.data_path == "tfds:hourly:1.0.0" and info.rows == 120
    assert (tmp_path / "tfds" / "hourly" / "1.0.0" / "dataset_info.json").is_file()
    again = load_series(
        DataSpec(
            path=info.data_path,
            tfds_dir=str(tmp_path / "tfds"),
            time_column="when",
            frequency="h",
        )
    )
    pd.testing.assert_frame_equal(again.frame[original.frame.columns], original.frame)
    assert again.digest == original.digest == info.digest
    assert again.frequency == "h" and again.source == "tfds:hourly:1.0.0"


def test_snapshots_are_never_overwritten(tmp_path, series_csv):
    series = load_series(DataSpec(path=str(series_csv)))
    write_snapshot(series.frame, "s", "1.0.0", str(tmp_path), series.digest)
    with pytest.raises(DataError, match=r"s:1.0.0 already exists .* another --version"):
        write_snapshot(series.frame, "s", "1.0.0", str(tmp_path), series.digest)
    write_snapshot(series.frame, "s", "1.1.0", str(tmp_path), series.digest)
    latest = read_tfds("s", str(tmp_path))  # no version: TFDS picks the newest
    assert len(latest) == len(series.frame)


def test_unknown_tfds_dataset_names_it_and_the_folder(tmp_path):
    with pytest.raises(DataError, match=rf"'no_such_set' from {tmp_path}"):
        load_series(DataSpec(path="tfds:no_such_set", tfds_dir=str(tmp_path)))


def test_cli_snapshot_then_train_on_it_records_the_input(
    prefect_api, tmp_path, hourly_csv, mlflow_uri
):
    tfds_dir = tmp_path / "tfds"
    experiment = write_experiment(
        tmp_path / "hourly.yaml",
        f"""
data: {{path: {hourly_csv}, time_column: when, frequency: h, targets: [load]}}
split: {{val: 20, test: 20}}
window: {{input_width: 6}}
model: {{kind: mlp, units: [4]}}
train: {{epochs: 2}}
tracking: {{uri: "{mlflow_uri}"}}
""",
    )
    done = run_cli_here(
        ["data", "snapshot", str(experiment), "--tfds-dir", str(tfds_dir)]
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "path: tfds:hourly:1.0.0" in done.stdout and "time_column: when" in done.stdout
    )
    digest = next(
        line.split()[2]
        for line in done.stdout.splitlines()
        if line.startswith("frame digest")
    )

    from flows.train import train_flow

    config = load_experiment(
        str(experiment),
        [
            "data.path=tfds:hourly:1.0.0",
            f"data.tfds_dir={tfds_dir}",
        ],
    )
    result = train_flow(config)
    run = MlflowClient(mlflow_uri).get_run(result.run_id)
    (entry,) = run.inputs.dataset_inputs
    assert run.data.tags["data_digest"] == digest
    assert entry.dataset.digest == digest[:32]  # MLflow's 36-character cap
    assert entry.dataset.name == "hourly"
    assert "tfds:hourly:1.0.0" in entry.dataset.source
    assert [t.value for t in entry.tags if t.key == "mlflow.data.context"] == [
        "training"
    ]
