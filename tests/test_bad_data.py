"""Every bad-data case stops the real flow before training, names the problem,
and leaves the MLflow store without a run."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_series, write_experiment
from mlflow import MlflowClient

from components.common.errors import DataError
from components.config.loading import load_experiment


def _hourly(n=120):
    frame = make_series(n)
    frame.insert(
        0,
        "when",
        pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M"),
    )
    return frame


def _write(frame_or_text, path):
    if isinstance(frame_or_text, str):
        path.write_text(frame_or_text)
    else:
        frame_or_text.to_csv(path, index=False)


CASES = {
    "missing column": (
        _hourly(),
        "data.targets=[c]",
        r"`data.targets` names column\(s\) \['c'\]",
    ),
    "non-numeric cell": (
        _hourly()
        .astype({"b": object})
        .assign(b=lambda f: f["b"].where(f.index != 7, "12,5")),
        "",
        r"column 'b' must be numeric; row 7 holds '12,5'",
    ),
    "missing value": (
        _hourly().assign(a=lambda f: f["a"].where(f.index != 9)),
        "",
        r"missing values in 'a': 1 \(first at row 9\)",
    ),
    "infinite value": (
        _hourly().assign(a=lambda f: f["a"].where(f.index != 3, np.inf)),
        "",
        r"column 'a' holds a non-finite value inf at row 3",
    ),
    "duplicate time": (
        _hourly().assign(when=lambda f: f["when"].where(f.index != 5, f["when"][4])),
        "",
        r"'when' has a duplicate value '2024-01-01 04:00:00\+00:00' at row 5",
    ),
    "unsorted time": (
        _hourly().iloc[[0, 2, 1] + list(range(3, 120))],
        "",
        r"'when' is not sorted: row 2",
    ),
    "gap": (
        _hourly().drop(index=[50, 51]),
        "data.frequency=h",
        r"2 time stamp\(s\) missing for `data.frequency` 'h'",
    ),
    "constant column": (
        _hourly().assign(a=1.0),
        "",
        r"\['a'\] are constant on the training split",
    ),
    "split too short": (
        _hourly(),
        "window.input_width=39",
        r"needs 40 rows per split, but val has 30, test has 30",
    ),
    "empty file": ("", "", r"the file is empty"),
    "header only": ("when,a,b\n", "", r"the file has no rows"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_fails_before_training(case, prefect_api, tmp_path, mlflow_uri):
    from flows.train import train_flow

    content, override, expected = CASES[case]
    data = tmp_path / "bad.csv"
    _write(content, data)
    experiment = write_experiment(
        tmp_path / "bad.yaml",
        f"""
data: {{path: {data}, time_column: when}}
split: {{val: 30, test: 30}}
window: {{input_width: 12}}
train: {{epochs: 1}}
tracking: {{uri: "{mlflow_uri}", experiment: bad}}
""",
    )
    config = load_experiment(str(experiment), [override] if override else [])
    with pytest.raises(DataError, match=expected) as err:
        train_flow(config)
    assert str(data) in str(err.value) or case in ("constant column", "split too short")
    client = MlflowClient(mlflow_uri)
    experiment_ = client.get_experiment_by_name("bad")
    assert experiment_ is None or not client.search_runs([experiment_.experiment_id])
