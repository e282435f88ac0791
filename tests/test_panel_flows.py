"""Panels end to end on a real panel (World Bank fertility rates, shipped with
statsmodels): one trained model shared by the train, serve, compare and tune
checks. Real Prefect API, real MLflow store, real TF."""

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from components.common.errors import DataError
from components.config.loading import load_experiment
from components.config.schema import DataSpec


@pytest.fixture(scope="module")
def fertility_run(prefect_api, tmp_path_factory, _empty_mlflow_db):
    from flows.train import train_flow

    folder = tmp_path_factory.mktemp("fertility") / "mlruns"
    folder.mkdir()
    (folder / "mlflow.db").write_bytes(_empty_mlflow_db.read_bytes())
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = load_experiment(
        "fertility",
        # the network alone, so its served forecast can be checked against the
        # evaluation's; the default combination: test_a_combination_...
        [f"tracking.uri={uri}", "train.epochs=4", "model.units=[8]", "model.combine=[]"],
    )
    return uri, train_flow(config)


def _short_fertility(uri: str, *overrides: str):
    """The fertility experiment, trained briefly (2 epochs, 8 units) into `uri`."""
    short = [f"tracking.uri={uri}", "train.epochs=2", "model.units=[8]"]
    return load_experiment("fertility", [*short, *overrides])


def test_fertility_panel_trains_one_model_scored_per_series(fertility_run):
    uri, result = fertility_run
    assert result.status == "FINISHED"
    client = MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.data.params["series.total"] == "210"
    assert int(run.data.params["series.test"]) > 150
    metrics = run.data.metrics
    for prefix in ("test_", "baseline/persistence/test_", "baseline/linear/test_"):
        for name in ("mase", "smape", "nd", "mse_raw"):
            assert np.isfinite(metrics[f"{prefix}{name}"]), prefix + name
    assert 0 <= metrics["test_series_beating_persistence"] <= 1
    assert 0.5 < metrics["test_coverage_95"] <= 1  # per-series scaled intervals
    paths = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"series_metrics.parquet", "series_scaling.parquet"} <= paths
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/series_skill.png", "plots/series_fertility.png",
            "plots/calibration.png"} <= plots  # fmt: skip
    local = client.download_artifacts(result.run_id, "series_metrics.parquet")
    table = pd.read_parquet(local)
    # the per-series classical references have rows of their own
    assert set(table["model"]) == {"model", "persistence", "linear", "ets", "theta"}
    assert table.groupby("model").size().nunique() == 1  # every series, every model
    mean_mase = table[table["model"] == "model"]["mase"].mean()
    assert mean_mase == pytest.approx(metrics["test_mase"])
    for name in ("ets", "theta"):
        rows = table[table["model"] == name]
        assert rows["mase"].mean() == pytest.approx(metrics[f"baseline/{name}/test_mase"])
    # the guard rail judged the panel by MASE, against the better of the two
    assert "val_mase" in metrics and run.data.tags["quality_check"] in ("pass", "fail")
    assert any(f"baseline/{name}/val_mase" in metrics for name in ("ets", "theta"))


def _served_like_the_evaluation(uri, result, chosen):
    """Serve `chosen` series on the rows before their evaluation's last test
    window (which ends at each series' end) and check the model gives the
    evaluation's numbers; returns (the served model, the raw source, the
    chosen series' rows)."""
    from components.data.ingest import read_raw
    from components.tracking import packaging

    model = packaging.load_model(result.forecaster_uri, uri)
    raw = read_raw(DataSpec(path="statsmodels:fertility"))
    report, config = result.evaluation, load_experiment("fertility")
    history = raw[raw["country"].isin(chosen)]
    cut = history.groupby("country")["year"].transform("max") - config.window.horizon
    served = model.predict(history[history["year"] <= cut])
    assert list(served.columns[:3]) == ["series", "step", "time"]
    assert sorted(served["series"].unique()) == sorted(chosen)
    for country in chosen:
        j = report.series.index(country)
        last = np.flatnonzero(report.window_series == j)[-1]
        mine = served[served["series"] == country]
        np.testing.assert_allclose(
            mine["fertility"], report.forecasts["model"][last, :, 0], rtol=1e-4
        )
        assert list(mine["time"]) == [2009, 2010, 2011]
        assert (mine["fertility_q0.025"] < mine["fertility"]).all()
        assert (mine["fertility_q0.975"] > mine["fertility_q0.9"]).all()
    return model, raw, history


def test_served_panel_model_forecasts_every_series_like_the_evaluation(fertility_run):
    from components.tracking import packaging

    uri, result = fertility_run
    model, raw, history = _served_like_the_evaluation(uri, result, ["FRA", "NER", "JPN"])
    # Series it never saw are still forecast: by the network, scaled by their
    # own rows, when they hold what a padded training window needs (horizon
    # 3 + 1 rows); else by a fallback that says so.
    new = pd.concat([history.head(12).assign(country="ATLANTIS"),
                     history.head(3).assign(country="MU")])  # fmt: skip
    served = model.predict(pd.concat([history, new]))
    made_by = served.groupby("series")["forecaster"].first()
    assert (made_by["ATLANTIS"], made_by["MU"], made_by["FRA"]) == (
        "network", "naive", "network"
    )
    mu = served[served["series"] == "MU"]
    last = history.head(3)["fertility"].dropna().iloc[-1]
    assert (mu["fertility"] == last).all()  # naive: the last value held
    assert mu["fertility_q0.1"].isna().all()  # no interval from a fallback
    atlantis = served[served["series"] == "ATLANTIS"]
    seen = history.head(12)["fertility"]
    assert atlantis["fertility"].between(0.5 * seen.min(), 1.5 * seen.max()).all()
    assert (atlantis["fertility_q0.1"] < atlantis["fertility"]).all()
    # The whole source: every series gets a forecast; those the network cannot
    # (too short to train on, or their last rows missing) by the fallback.
    forecaster = packaging.forecaster_of(model)
    frame, stray = forecaster.request_frame(raw)
    assert stray == []
    with pytest.raises(DataError, match="series '[A-Z]+' was not trained on"):
        forecaster.forecast(frame, skip_short=False)
    france = frame[frame["country"] == "FRA"].tail(3)
    with pytest.raises(DataError, match="series 'FRA' needs 4 of its last 10 rows"):
        forecaster.forecast(france, skip_short=False)
    everything = forecaster.forecast(frame)
    assert set(everything["series"]) == set(raw.dropna(subset=["fertility"])["country"])
    by = everything.attrs["forecasters"]
    assert "FRA" in by["network"] and "DMA" in by["network"]  # DMA: 4 rows, padded
    assert forecaster.forecast(france).attrs["forecasters"] == {"naive": ["FRA"]}
    own = everything.attrs["own_statistics"]  # not trained on, a window's worth
    assert own and not set(own) & set(forecaster.series_names)
    assert set(by["network"]) - set(own) <= set(forecaster.series_names)
    assert len(by["network"]) - len(own) > 190  # all but a few of the 201


def test_a_series_embedding_model_serves_each_series_with_its_own_index(
    fertility_run,
):
    """`model.id_embedding`: served series are looked up by their training
    index whatever rows (and in whatever order) the request holds."""
    from flows.train import train_flow

    uri, _ = fertility_run
    config = _short_fertility(
        uri, "model.id_embedding=3", "tracking.experiment=fertility-embedding",
        "model.combine=[]",  # the network's own lookup is what is checked
    )  # fmt: skip
    result = train_flow(config)
    run = MlflowClient(uri).get_run(result.run_id)
    assert run.data.params["model.id_embedding"] == "3"
    assert result.metrics["test_mase"] < result.metrics["baseline_persistence_test_mase"]
    model, _, history = _served_like_the_evaluation(uri, result, ["ZWE", "FRA", "NER"])
    # the retrain gate's holdout scoring looks each series up the same way
    from components.tracking import packaging

    forecaster = packaging.forecaster_of(model)
    scored = forecaster.holdout(history, since=2009)
    report = result.evaluation
    for country in ("ZWE", "NER"):
        j = report.series.index(country)
        last = np.flatnonzero(report.window_series == j)[-1]
        (row,) = np.flatnonzero(scored.index == f"{country}@2009")
        scale = forecaster.scale_of()[country]
        np.testing.assert_allclose(
            scored.forecast[row, :, 0] * scale[0], report.forecasts["model"][last, :, 0],
            rtol=1e-4,
        )  # fmt: skip


def test_compare_ranks_a_panel_by_mase(fertility_run):
    from flows.compare import compare_flow

    uri, _ = fertility_run
    config = _short_fertility(uri, "tracking.experiment=fertility-compare")
    result = compare_flow(config, ["mlp", "gru"], seeds=1)
    assert result.ranked_by == "test_mase"
    board = result.leaderboard
    mase = [row["test_mase_mean"] for row in board]
    assert mase == sorted(mase)
    assert {"mlp", "gru", "persistence", "linear"} <= {row["model"] for row in board}
    client = MlflowClient(uri)
    plots = {a.path for a in client.list_artifacts(result.parent_run_id, "plots")}
    assert "plots/forecasts_fertility.png" in plots
    parent = client.get_run(result.parent_run_id).data.metrics
    assert parent["best_test_mase"] == mase[0]


def test_tuning_a_panel_splits_it_again_for_each_trials_window(fertility_run, tmp_path):
    from flows.tune import tune_flow

    uri, _ = fertility_run
    config = load_experiment(
        "fertility",
        [f"tracking.uri={uri}", "train.epochs=2", "tracking.experiment=fertility-tune"],
    )
    result = tune_flow(config, "mlp", trials=3, output=str(tmp_path / "best.yaml"))
    client = MlflowClient(uri)
    widths = set()
    for outcome in result.trials:
        run = client.get_run(outcome["run_id"])
        widths.add(run.data.params["window.input_width"])
        if outcome["state"] == "complete":
            # every trial scores validation windows, whatever its width
            assert np.isfinite(run.data.metrics["best_val_loss"])
    assert len(widths) > 1


def test_a_panel_backtests_every_series_at_each_origin(fertility_run):
    """Two folds on the fertility panel: the first ends three years before the
    test split, every series cut at the same years; the summary ranks by MASE."""
    from flows.train import train_flow

    uri, _ = fertility_run
    config = _short_fertility(
        uri, "evaluate.backtest.folds=2", "evaluate.backtest.step=3",
        "tracking.experiment=fertility-backtest",
    )  # fmt: skip
    result = train_flow(config)
    metrics = result.metrics
    assert metrics["backtest_folds"] == 2
    assert np.isfinite(metrics["backtest_test_mase_mean"])
    assert metrics["backtest_test_mase_std"] > 0  # two folds, two scores
    client = MlflowClient(uri)
    table = pd.read_csv(client.download_artifacts(result.run_id, "backtest.csv"))
    assert list(table["test_stop"]) == [52 - 3, 52]  # 1960-2011: 52 years
    assert (table["test_start"] == table["test_stop"] - 8).all()  # 8 test years
    assert "test_mase" in table.columns


def test_a_panel_trains_under_mixed_precision(fertility_run):
    """The GPU path (mixed precision), run on a CPU with bfloat16: the
    per-series windows, revin and the float32 head work together."""
    from flows.train import train_flow

    uri, _ = fertility_run
    config = _short_fertility(
        uri, "train.precision=mixed_bfloat16", "tracking.experiment=fertility-bf16"
    )
    result = train_flow(config)
    run = MlflowClient(uri).get_run(result.run_id)
    assert run.data.params["precision_policy"] == "mixed_bfloat16"
    assert np.isfinite(result.metrics["test_mase"])
    assert result.metrics["test_mase"] < result.metrics["baseline_persistence_test_mase"]


def test_a_panel_compare_trains_its_children_on_dask_workers(fertility_run):
    """The panel (its layout, per-series statistics and scores) travels to
    Dask workers and back: each child trains in another process."""
    import os

    from flows.compare import run_compare

    uri, _ = fertility_run
    config = _short_fertility(uri, "tracking.experiment=fertility-dask")
    result = run_compare(config, ["mlp"], seeds=2, executor="dask")
    client = MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    here = f":{os.getpid()}"
    assert not any(c.data.tags["rnnflow_worker"].endswith(here) for c in children)
    assert result.ranked_by == "test_mase"
    mlp = next(row for row in result.leaderboard if row["model"] == "mlp")
    assert mlp["runs"] == 2 and np.isfinite(mlp["test_mase_mean"])


def test_a_panel_whose_first_series_are_too_short_trains_packages_and_predicts(
    prefect_api, tmp_path, _empty_mlflow_db
):
    """The first series in sort order have fewer rows than one window: one is
    padded into training, one is too short even for that and left out, and
    packaging the model (whose input example used to be the source's first
    series) no longer fails the run; `predict` forecasts every series, the
    shortest by the named fallback."""
    import json
    import shutil

    from conftest import run_cli_here

    from components.data.ingest import read_raw

    raw = read_raw(DataSpec(path="statsmodels:fertility")).dropna(subset=["fertility"])
    rows = raw.groupby("country").size()
    keep = sorted(rows[rows >= 40].index)[:12]  # long series, then two cut short
    frame = raw[raw["country"].isin(keep)].sort_values(["country", "year"])
    # first in sort order: 3 rows (below horizon + 1: the fallback) and 16
    # (4 training rows before the 12 of val and test: padded into training)
    short = {keep[0]: 3, keep[1]: 16}
    last = frame.groupby("country")["year"].transform("max")
    cut = frame["country"].map(short).fillna(99) > last - frame["year"]
    frame = frame[cut]
    data = tmp_path / "panel.csv"
    frame[["country", "year", "fertility"]].to_csv(data, index=False)
    store = tmp_path / "mlruns" / "mlflow.db"
    store.parent.mkdir()
    shutil.copy(_empty_mlflow_db, store)
    experiment = tmp_path / "short.yaml"
    experiment.write_text(
        f"data: {{path: {data}, id_column: country, time_column: year, "
        "targets: [fertility]}\nsplit: {test: 6, val: 6}\n"
        "window: {input_width: 8, horizon: 3}\nmodel: {units: [8]}\n"
        f"train: {{epochs: 2}}\ntracking: {{uri: 'sqlite:///{store}'}}\n"
    )
    trained = run_cli_here(["train", str(experiment), "--json"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    assert result["status"] == "FINISHED"
    served = run_cli_here(["predict", str(experiment), "--model-uri",
                           f"runs:/{result['run_id']}/forecaster", "--json"])  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    assert "1 series forecast by naive" in served.stdout  # named, counted
    assert "not trained on" not in served.stdout  # the padded one was
    forecast = json.loads(served.stdout.strip().splitlines()[-1])["forecast"]
    made_by = {row["series"]: row["forecaster"] for row in forecast}
    served_by = MlflowClient(f"sqlite:///{store}").get_run(result["run_id"]).data.tags[
        "auto_combine"
    ]  # the network, or its mean with Theta (`model.combine: auto`)
    assert made_by == {s: "naive" if s == keep[0] else served_by for s in keep}
    mine = [r["fertility"] for r in forecast if r["series"] == keep[1]]
    recent = frame.loc[frame["country"] == keep[1], "fertility"]
    assert all(0.5 * recent.min() < v < 1.5 * recent.max() for v in mine)


def test_refit_serves_a_network_trained_on_every_row(prefect_api, tmp_path, mlflow_uri):
    """`train.refit`: the served model is trained again on every row (its
    statistics too) for the best epoch's count; the run's test scores stay
    those of the model before the refit, and the run says so."""
    from components.data.ingest import read_raw
    from flows.train import train_flow

    config = _short_fertility(mlflow_uri, "train.refit=true", "train.epochs=3")
    result = train_flow(config)
    run = MlflowClient(mlflow_uri).get_run(result.run_id)
    metrics = run.data.metrics
    assert metrics["refit_epochs"] == metrics["best_epoch"]
    assert "refit/loss" in metrics and run.data.tags["refit"].startswith("every row")
    assert "Served: the network refit on every row" in run.data.tags["mlflow.note.content"]
    served = result.forecaster
    raw = read_raw(config.data)
    france = raw.loc[raw["country"] == "FRA", "fertility"]
    assert france.notna().all()  # nothing interpolated: the mean is plain
    column = served.normalizer.columns.index("fertility")
    row = served.normalizer.series.index("FRA")
    assert served.normalizer.mean[row, column] == pytest.approx(france.mean())
    assert france.iloc[:-14].mean() != pytest.approx(france.mean())  # not training's
    forecast = served.forecast(served.request_frame(raw)[0])
    assert "FRA" in forecast.attrs["forecasters"]["network"]


def test_a_combination_serves_and_scores_the_mean_of_network_and_theta(
    prefect_api, mlflow_uri
):
    """`model.combine: [theta]`: the run's test scores are the mean of the
    network's and per-series Theta's forecasts (the network alone under
    `network_test_*`), and the logged forecaster serves that mean, Theta
    fitted on each series' rows at request time."""
    from dataclasses import replace

    from components.data import ingest
    from components.evaluation import per_series
    from components.tracking.packaging import load_forecaster
    from flows.train import train_flow

    config = _short_fertility(mlflow_uri, "model.combine=[theta]", "evaluate.classical=[]")
    result = train_flow(config)
    report = result.evaluation
    np.testing.assert_allclose(
        report.forecasts["model"],
        (report.forecasts["network"] + report.forecasts["theta"]) / 2,
    )
    metrics = result.metrics
    assert metrics["network_test_mase"] != metrics["test_mase"]
    assert "baseline_theta_test_mase" in metrics  # added to the references
    forecaster = load_forecaster(f"runs:/{result.run_id}/forecaster", mlflow_uri)
    assert forecaster.combine == ("theta",)
    frame, _ = forecaster.request_frame(ingest.read_raw(config.data))
    combined = forecaster.forecast(frame)
    alone = replace(forecaster, combine=()).forecast(frame)
    one = combined[(combined["series"] == "FRA") & (combined["forecaster"] == "network+theta")]
    rows = frame.loc[frame["country"] == "FRA", "fertility"].dropna().to_numpy()
    season = config.evaluate.season
    theta = per_series.forecast_series(
        per_series.fit_series("theta", rows, season), rows, np.array([len(rows) - 1]), 3
    )[0]
    network = alone.loc[alone["series"] == "FRA", "fertility"].to_numpy()
    np.testing.assert_allclose(one["fertility"].to_numpy(), (network + theta) / 2)
    # the retrain gate judges what is served: Theta fitted on the rows before
    # the holdout, run on from each window's origin, averaged in
    judged = forecaster.holdout(frame, since=2005, only=["FRA"])
    network = replace(forecaster, combine=()).holdout(frame, since=2005, only=["FRA"])
    years = frame.loc[frame["country"] == "FRA", ["year", "fertility"]].dropna()
    fit = per_series.fit_series("theta", rows[years["year"].to_numpy() < 2005], season)
    first = [int(np.flatnonzero(years["year"].to_numpy() == int(label.split("@")[1]))[0])
             for label in judged.index]  # fmt: skip
    theta = per_series.forecast_series(fit, rows, np.array(first) - 1, 3)
    unit = forecaster.scale_of()["FRA"][0]
    assert len(judged.index) > 1
    np.testing.assert_allclose(
        judged.forecast[:, :, 0], (network.forecast[:, :, 0] + theta / unit) / 2
    )


def test_auto_combination_is_chosen_on_validation_and_served_as_chosen(
    prefect_api, mlflow_uri
):
    """The panel default `model.combine: auto`: the mean of the network and
    per-series Theta unless the network alone is clearly better on the
    validation split (over two standard errors across series: fertility,
    where Theta is poor); the test scores and the logged forecaster follow
    the choice."""
    import re

    from components.tracking.packaging import load_forecaster
    from flows.train import train_flow

    config = _short_fertility(mlflow_uri, "evaluate.classical=[]")
    assert config.model.combine == "auto"
    result = train_flow(config)
    tags = MlflowClient(mlflow_uri).get_run(result.run_id).data.tags
    why = tags["auto_combine_choice"]
    alone, mean = map(float, re.findall(r"(?:network|theta) (\d+\.\d+)", why))
    z = float(re.search(r"minus mean ([-+]\d+\.\d+) standard errors", why).group(1))
    combined = z >= -2.0
    assert alone < mean and not combined  # fertility: Theta is poor, clearly
    assert tags["auto_combine"] == ("network+theta" if combined else "network")
    assert ("network_test_mase" in result.metrics) == combined
    forecaster = load_forecaster(f"runs:/{result.run_id}/forecaster", mlflow_uri)
    assert forecaster.combine == (("theta",) if combined else ())
    # a panel with a covariate (Theta cannot see it), or asked for the network
    # alone, is not combined
    assert load_experiment("fertility", ["data.known=[promo]"]).model.combine == []
    assert load_experiment("fertility", ["model.combine=[]"]).model.combine == []
