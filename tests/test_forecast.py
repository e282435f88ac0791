"""`rnnflow forecast`: every series forecast from the newest rows (or as of a
past time, from the rows up to it), kept in the forecast store one origin at
a time (a rerun replaces, a killed write loses nothing), logged as a run."""

import json

import pandas as pd
import pytest
import pyarrow.dataset as ds
from mlflow import MlflowClient

from components.common.errors import DataError
from components.serving.forecast_store import ForecastStore
from components.serving.rows import rows_up_to


def _cli(api: str):
    """`rnnflow` in a fresh process (here, not through a background server)
    on the session's Prefect API: the commands' terminal and logging set-up
    stays out of the test process."""
    from conftest import run_cli

    return lambda args: run_cli(["--local", *args], env={"PREFECT_API_URL": api})


def _rows(n_series: int, value: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series": [f"s{i}" for i in range(n_series) for _ in range(2)],
            "step": [1, 2] * n_series,
            "time": [2012, 2013] * n_series,
            "forecaster": "network",
            "y": value,
        }
    )


def test_an_origin_written_again_replaces_its_rows(tmp_path):
    store = ForecastStore(tmp_path / "store")
    store.write(2010, _rows(3, 1.0))
    store.write(2011, _rows(3, 2.0))
    store.write(2010, _rows(2, 5.0))  # a rerun of 2010: replaces, never appends
    assert store.origins() == ["2010", "2011"]
    rows = store.read()
    assert len(rows) == 4 + 6
    assert set(rows.loc[rows["origin"] == "2010", "y"]) == {5.0}
    # the layout any Parquet reader takes as one table, partitioned by origin
    table = ds.dataset(tmp_path / "store", partitioning="hive").to_table().to_pandas()
    assert len(table) == 10 and set(table["origin"].astype(str)) == {"2010", "2011"}


def test_a_write_killed_half_way_leaves_the_previous_rows(tmp_path):
    store = ForecastStore(tmp_path / "store")
    store.write(2010, _rows(3, 1.0))
    # what a process killed before its rename leaves: a hidden staging file
    (store.path_of(2010) / ".part-0.parquet.dead").write_bytes(b"half a parquet file")
    assert len(store.read()) == 6
    table = ds.dataset(tmp_path / "store", partitioning="hive").to_table()
    assert table.num_rows == 6  # readers skip hidden files too
    # the next write of that origin sweeps such a file once it is stale, and
    # leaves a fresh one (a live writer's) alone
    import os
    import time

    dead = store.path_of(2010) / ".part-0.parquet.dead"
    live = store.path_of(2010) / ".part-0.parquet.live"
    live.write_bytes(b"being written")
    old = time.time() - 2 * 3600
    os.utime(dead, (old, old))
    store.write(2010, _rows(3, 1.5))
    assert not dead.exists() and live.exists()
    with pytest.raises(DataError, match=r"lack column\(s\) \['forecaster'\]"):
        store.write(2012, _rows(1, 0.0).drop(columns="forecaster"))
    assert store.origins() == ["2010"]


def test_rows_up_to_an_origin_by_year_date_or_row():
    years = pd.DataFrame({"year": [2001, 2002, 2003], "y": [1.0, 2.0, 3.0]})
    assert list(rows_up_to(years, "year", "2002")["y"]) == [1.0, 2.0]
    dates = pd.DataFrame(
        {"date": ["2026-01-01", "2026-02-01", "2026-03-01"], "y": [1, 2, 3]}
    )
    assert list(rows_up_to(dates, "date", "2026-02-15")["y"]) == [1, 2]
    assert len(rows_up_to(years.drop(columns="year"), None, "1")) == 2
    with pytest.raises(DataError, match="no row is that old"):
        rows_up_to(years, "year", "1990")
    with pytest.raises(DataError, match="is not a time like `date`"):
        rows_up_to(dates, "date", "soon")


@pytest.mark.slow
def test_forecast_stores_every_series_at_each_origin_and_logs_a_run(
    prefect_api, tmp_path, mlflow_uri
):
    cli = _cli(prefect_api)
    common = [f"tracking.uri={mlflow_uri}", "train.epochs=2", "model.units=[8]"]
    trained = cli(["train", "fertility", *common, "--json"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_id = json.loads(trained.stdout.strip().splitlines()[-1])["run_id"]
    store = tmp_path / "store"
    args = ["forecast", "fertility", "--model-uri", f"runs:/{run_id}/forecaster",
            *common, f"forecast.store={store}", "--json"]  # fmt: skip
    latest = cli(args)
    assert latest.returncode == 0, latest.stderr[-3000:]
    found = json.loads(latest.stdout.strip().splitlines()[-1])
    assert found["origin"] == "2011"
    backfill = cli([*args, "--as-of", "2005"])
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    again = cli([*args, "--as-of", "2005"])  # a rerun replaces it
    assert again.returncode == 0, again.stderr[-3000:]
    rows = ForecastStore(store).read()
    assert sorted(set(rows["origin"])) == ["2005", "2011"]
    past = rows[rows["origin"] == "2005"]
    assert not past.duplicated(["series", "step"]).any()
    france = past[past["series"] == "FRA"].sort_values("step")
    assert list(france["time"]) == [2006, 2007, 2008]  # from the rows up to 2005
    assert set(past["run_id"]) == {
        json.loads(again.stdout.strip().splitlines()[-1])["run_id"]
    }
    assert past["series"].nunique() > 190  # every series with a row by 2005
    client = MlflowClient(mlflow_uri)
    run = client.get_run(found["run_id"])
    assert run.data.tags["rnnflow.role"] == "forecast" and run.info.status == "FINISHED"
    assert (
        run.data.metrics["series"] == rows[rows["origin"] == "2011"]["series"].nunique()
    )
    assert "forecast.parquet" in {
        a.path for a in client.list_artifacts(found["run_id"])
    }
    champion = cli(["forecast", "fertility", *common])
    assert champion.returncode != 0 and "retrain" in champion.stderr  # no champion yet


@pytest.mark.slow
def test_a_series_without_time_stamps_is_forecast_by_row_number(
    prefect_api, tmp_path, mlflow_uri
):
    """The gas furnace has no time column: the origin is the last row
    number and each step's `time` the row it forecasts."""
    cli = _cli(prefect_api)
    common = [f"tracking.uri={mlflow_uri}", "train.epochs=2", f"forecast.store={tmp_path}"]
    trained = cli(["train", "gas_furnace", *common, "--json"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_id = json.loads(trained.stdout.strip().splitlines()[-1])["run_id"]
    done = cli(["forecast", "gas_furnace", "--as-of", "200", "--model-uri",
                         f"runs:/{run_id}/forecaster", *common, "--json"])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = ForecastStore(tmp_path).read()
    assert list(rows["origin"]) == ["200"] and list(rows["time"]) == [201]
    assert list(rows.columns[:4]) == ["series", "step", "time", "forecaster"]


def test_a_process_killed_while_it_writes_leaves_whole_rows(tmp_path):
    """SIGKILL a process that rewrites one origin over and over: whatever moment
    it dies, the store reads either the old rows or one whole rewrite."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    store = ForecastStore(tmp_path / "store")
    store.write(2010, _rows(200, 1.0))
    writer = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, pandas as pd\n"
            "from components.serving.forecast_store import ForecastStore\n"
            "from test_forecast import _rows\n"
            "store = ForecastStore(sys.argv[1])\n"
            "for i in range(10**6):\n"
            "    store.write(2010, _rows(20000, float(i + 2)))\n"
        ), str(tmp_path / "store")],
        cwd=REPO, env={**__import__("os").environ,
                       "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while store.read()["y"].iloc[0] == 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)  # until its first rewrite is in
    time.sleep(0.37)  # then die in the middle of later ones
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    rows = store.read()
    assert store.origins() == ["2010"]
    assert rows["y"].nunique() == 1 and rows["y"].iloc[0] > 2  # one whole rewrite
    assert len(rows) == 40000 and not rows.duplicated(["series", "step"]).any()
