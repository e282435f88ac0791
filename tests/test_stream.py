"""`data.stream: true`: a Parquet panel trained on without holding it in
memory. On a real panel that fits (World Bank fertility, shipped with
statsmodels, written as hive-partitioned Parquet in shuffled row order) the
streamed path's statistics, windows and scores equal the in-memory path's;
training, logging and `rnnflow predict` run end to end through the CLI."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_cli, write_experiment

from components.common.errors import DataError
from components.config.loading import load_experiment
from components.data import ingest, stream
from components.data.windowing import make_windows, window_series
from components.evaluation import streamed

WINDOW = {"input_width": 10, "horizon": 3}


@pytest.fixture(scope="module")
def fertility_folder(tmp_path_factory) -> Path:
    """The complete series of the fertility panel, one folder per country,
    rows shuffled (the reader sorts them)."""
    frame = ingest.read_raw(load_experiment("fertility", []).data)
    gaps = frame.loc[frame["fertility"].isna(), "country"].unique()
    frame = frame[~frame["country"].isin(gaps)][["country", "year", "fertility"]]
    folder = tmp_path_factory.mktemp("fertility") / "panel"
    frame.sample(frac=1, random_state=0).to_parquet(folder, partition_cols=["country"])
    return folder


def _in_memory(config):
    """The in-memory path's statistics and scaled splits (its components,
    without a Prefect flow around them)."""
    from components.data import panel, preprocess

    series = ingest.load_series(config.data)
    found = panel.split_panel(
        series.frame, series.layout, config.split, config.data, config.window,
        series.targets, series.shared_columns,
    )  # fmt: skip
    normalizer = preprocess.fit_series_normalizer(found.parts["train"], [])
    scaled = {
        name: preprocess.scale_split(part, normalizer, series.features, series.targets)
        for name, part in found.parts.items()
    }
    return normalizer, scaled


def _config(folder: Path, stream_it: bool, *more: str):
    return load_experiment("fertility", [
        f"data.path={folder}", "data.missing=error", "data.short_series=skip",
        f"data.stream={str(stream_it).lower()}", "evaluate.season=2",
        "evaluate.classical=[]", *more,
    ])  # fmt: skip


@pytest.mark.parametrize("shard_rows", [500, stream.SHARD_ROWS])
def test_the_scan_and_scores_equal_the_in_memory_path(fertility_folder, shard_rows):
    from components.config.schema import ModelSpec
    from components.evaluation.evaluate import evaluate_on_test
    from components.training.builder import build_for_training
    normalizer, scaled = _in_memory(_config(fertility_folder, False))
    config = _config(fertility_folder, True)
    panel = stream.scan_panel(
        config.data, config.split, config.window, shard_rows=shard_rows,
        scale_of=streamed.mase_scale_of(2),
    )  # fmt: skip
    assert (len(panel.shards) > 10) == (shard_rows == 500)
    train = scaled["train"]
    assert set(panel.series) == set(train.series)
    order = [panel.index[name] for name in train.series]
    np.testing.assert_allclose(panel.normalizer.mean[order], normalizer.mean, rtol=1e-12)
    np.testing.assert_allclose(panel.normalizer.std[order], normalizer.std, rtol=1e-12)
    for split in stream.SPLITS:
        part = scaled[split]
        counts = np.bincount(
            window_series(len(part.inputs), config.window, part.bounds),
            minlength=len(part.series),
        )
        found = panel.windows[split][[panel.index[n] for n in part.series]]
        np.testing.assert_array_equal(found, counts)
        assert found.sum() > 0, split
    # one model, scored both ways on the test split
    model = build_for_training(
        ModelSpec(kind="gru", units=[8], window_norm="revin", skip="linear"),
        config.train, config.window, train, (0,),
    ).model  # fmt: skip
    expected = evaluate_on_test(
        model, train, scaled["test"], config.window, normalizer,
        ["fertility"], season=2,
    ).metrics  # fmt: skip
    metrics, table = streamed.score(model, panel, "test", season=2)
    for key, value in metrics.items():
        assert value == pytest.approx(expected[key], rel=1e-6), key
    assert "test_mase" in metrics and "baseline_seasonal_naive_test_mase" in metrics
    assert set(table["series"]) == set(scaled["test"].series) & set(panel.series)


def test_training_windows_are_the_in_memory_windows_drawn_per_series(fertility_folder):
    config = _config(fertility_folder, True)
    panel = stream.scan_panel(config.data, config.split, config.window, shard_rows=2000)
    # every window, unshuffled: the in-memory windows, as a set
    x, y = zip(*stream.batches(panel, "train", 256))
    x, y = np.concatenate(x), np.concatenate(y)
    part = _in_memory(_config(fertility_folder, False))[1]["train"]
    x_memory, y_memory = make_windows(part.inputs, part.targets, config.window, part.bounds)

    def rows(a, b):
        joined = np.concatenate([a.reshape(len(a), -1), b.reshape(len(b), -1)], axis=1)
        return joined[np.lexsort(joined.T[::-1])]

    np.testing.assert_allclose(rows(x, y), rows(x_memory, y_memory), atol=1e-6)
    # a capped, shuffled epoch: at most 4 per series, the same for the same
    # seed and epoch, another draw the next epoch
    cap = 4
    epoch = [np.concatenate([b[0] for b in stream.batches(panel, "train", 64, cap, 7, e)])
             for e in (0, 0, 1)]  # fmt: skip
    expected = int(np.minimum(panel.windows["train"], cap).sum())
    assert len(epoch[0]) == expected == stream.epoch_windows(panel, "train", cap)
    np.testing.assert_array_equal(epoch[0], epoch[1])
    assert not np.array_equal(np.sort(epoch[0], axis=None), np.sort(epoch[2], axis=None))
    data = stream.dataset(panel, "train", 64, cap, seed=7)
    assert int(data.cardinality()) == -(-expected // 64)
    # tf.data hands out the generator's batches as they were, in order
    # (Python passes them over in blocks of several)
    handed = [x.numpy() for x, _ in data]
    assert {len(x) for x in handed[:-1]} == {64} and 0 < len(handed[-1]) <= 64
    np.testing.assert_array_equal(np.concatenate(handed), epoch[0])


def test_an_epoch_left_early_stops_its_reader_thread(fertility_folder):
    """Keras may stop drawing mid-epoch (an error, an interrupt): closing the
    batches leaves no shard reader running, and a read error reaches the
    consumer."""
    import threading

    config = _config(fertility_folder, True)
    panel = stream.scan_panel(config.data, config.split, config.window, shard_rows=300)
    assert len(panel.shards) > 3

    def readers():  # this test's: other tests' pipelines may share the process
        return {t for t in threading.enumerate()
                if t.name.startswith("rnnflow-shards")} - before  # fmt: skip

    before = set()
    before = readers()
    epoch = stream.batches(panel, "train", 8, 4, seed=1, buffer=64)
    next(epoch)
    assert readers()  # reading ahead
    epoch.close()
    assert not readers()
    broken = dataclasses.replace(panel, shards=(("/nonexistent/part.parquet",),) * 2)
    with pytest.raises(Exception, match="nonexistent"):
        next(stream.batches(broken, "train", 8))
    assert not readers()


def test_a_streamed_run_trains_logs_and_predicts_through_the_cli(
    fertility_folder, tmp_path, mlflow_uri
):
    from mlflow import MlflowClient

    path = write_experiment(tmp_path / "fert.yaml", f"""
name: fert_stream
data: {{path: {fertility_folder}, id_column: country, time_column: year,
        targets: [fertility], stream: true}}
split: {{test: 8, val: 6}}
window: {{input_width: 10, horizon: 3}}
evaluate: {{season: 2}}
train: {{epochs: 3, batch_size: 64, windows_per_series: 8}}
tracking: {{uri: "{mlflow_uri}"}}
""")  # fmt: skip
    trained = run_cli(["--local", "train", str(path), "--json"], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    assert result["status"] == "FINISHED"
    assert "streamed panel: 200 files" in trained.stderr
    client = MlflowClient(mlflow_uri)
    run = client.get_run(result["run_id"])
    assert run.data.tags["rnnflow.stream"] == "true"
    assert run.data.params["windows.test"] == "1164"
    assert run.data.metrics["test_mase"] > 0
    assert run.data.metrics["baseline/persistence/test_mase"] > 0  # the UI's section
    logged = {f.path for f in client.list_artifacts(result["run_id"])}
    assert {"series_scaling.parquet", "series_metrics.parquet", "config.yaml"} <= logged

    # a new short series and a series the model never saw arrive
    extra = pd.DataFrame({"country": ["NEW"] * 20 + ["TINY"] * 4,
                          "year": list(range(1992, 2012)) + list(range(2008, 2012)),
                          "fertility": np.linspace(3, 2, 24)})  # fmt: skip
    extra.to_parquet(fertility_folder.parent / "extra.parquet")
    grown = fertility_folder.parent / "grown"
    grown.mkdir()
    for source in (fertility_folder, fertility_folder.parent / "extra.parquet"):
        (grown / source.name).symlink_to(source)
    out = tmp_path / "forecast.parquet"
    predicted = run_cli(
        ["--local", "predict", str(path), f"data.path={grown}", "--output",
         str(out), "--json"], cwd=tmp_path,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    summary = json.loads(predicted.stdout.strip().splitlines()[-1])
    forecast = pd.read_parquet(out)
    assert len(forecast) == 3 * forecast["country"].nunique() == 3 * 202
    who = forecast.groupby("country")["forecaster"].first()
    assert who["TINY"] == "persistence" and who["NEW"] == "network, own statistics"
    assert who["ABW"] == "network" and summary["series"]["network"] == 194
    assert list(forecast.loc[forecast["country"] == "ABW", "year"]) == [2012, 2013, 2014]
    assert np.isfinite(forecast["fertility"]).all()
    # `rnnflow forecast` keeps the streamed forecast in the store, one origin
    stored = run_cli(["--local", "forecast", str(path), "--json"], cwd=tmp_path)
    assert stored.returncode == 0, stored.stderr[-3000:]
    kept = json.loads(stored.stdout.strip().splitlines()[-1])
    assert kept["origin"] == "2011" and kept["metrics"]["series"] == 200
    from components.serving.forecast_store import ForecastStore

    store = ForecastStore(Path(kept["store"]))
    assert store.origins() == ["2011"]
    assert store.read()["forecaster"].value_counts()["network"] == 3 * 194
    # the network's forecast of a series by hand: its last 10 rows, scaled by
    # its training statistics, through the logged network
    from components.tracking.streamed import load_streamed

    served = load_streamed(mlflow_uri, result["run_id"])
    rows = pd.read_parquet(fertility_folder / "country=ABW").sort_values("year")
    j = served.normalizer.series.index("ABW")
    mean, std = served.normalizer.mean[j], served.normalizer.std[j]
    x = ((rows["fertility"].to_numpy()[-10:, None] - mean) / std)[None].astype(np.float32)
    by_hand = np.asarray(served.model(x))[0, :, 0] * std[0] + mean[0]
    np.testing.assert_allclose(
        forecast.loc[forecast["country"] == "ABW", "fertility"], by_hand, rtol=1e-5
    )


def test_a_series_split_across_files_and_a_gap_are_refused_naming_the_file(tmp_path):
    rows = pd.DataFrame({"id": ["a"] * 30 + ["b"] * 30, "t": list(range(30)) * 2,
                         "y": np.arange(60.0)})  # fmt: skip
    folder = tmp_path / "panel"
    folder.mkdir()
    rows.iloc[:40].to_parquet(folder / "one.parquet")
    rows.iloc[40:].to_parquet(folder / "two.parquet")
    config = load_experiment("fertility", [
        f"data.path={folder}", "data.id_column=id", "data.time_column=t",
        "data.targets=[y]", "data.missing=error", "data.stream=true",
    ])  # fmt: skip
    with pytest.raises(DataError, match=r"series 'b' is in .*one.parquet and in .*two.parquet"):
        stream.scan_panel(config.data, config.split, config.window, shard_rows=10)
    gap = rows.copy()
    gap.loc[5, "y"] = np.nan
    (folder / "two.parquet").unlink()
    gap.to_parquet(folder / "one.parquet")
    with pytest.raises(DataError, match=r"one.parquet: target column 'y' has empty values"):
        stream.scan_panel(config.data, config.split, config.window)


def test_what_does_not_stream_yet_is_refused_by_name():
    from components.common.errors import ConfigError

    with pytest.raises(ConfigError, match=r"does not stream model.id_embedding, train.refit"):
        load_experiment("fertility", [
            "data.path=/tmp/x", "data.missing=error", "data.stream=true",
            "train.refit=true", "model.id_embedding=2",
        ])  # fmt: skip
    with pytest.raises(ConfigError, match="reads a local Parquet file or folder"):
        load_experiment("fertility", ["data.missing=error", "data.stream=true"])


def test_predict_of_a_streamed_panel_needs_a_parquet_output(fertility_folder, tmp_path):
    path = write_experiment(tmp_path / "s.yaml", f"""
name: s
data: {{path: {fertility_folder}, id_column: country, time_column: year,
        targets: [fertility], stream: true}}
tracking: {{uri: "sqlite:///{tmp_path}/m.db"}}
""")  # fmt: skip
    found = run_cli(["--local", "predict", str(path), "--output", "f.csv"], cwd=REPO)
    assert found.returncode != 0
    assert "--output FILE.parquet" in found.stderr
