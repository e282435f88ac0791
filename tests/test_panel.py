"""Panels: many series, one model. Windows stay inside a series, every series
is cut at the same time, statistics come from each series' training rows,
bad keys are refused naming the series, and a real panel (World Bank
fertility rates, shipped with statsmodels) trains end to end."""

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from components.common.errors import ConfigError, DataError
from components.config.loading import load_experiment
from components.config.schema import DataSpec, SplitSpec, WindowSpec
from components.data import ingest, panel, preprocess
from components.data.windowing import (
    make_dataset,
    make_windows,
    window_series,
    window_starts,
)
from components.evaluation import panel_metrics

WINDOW = WindowSpec(input_width=2, horizon=1)


def _long(n_series=3, n_rows=12, start=2000, **columns) -> pd.DataFrame:
    """A long table: series s holds values 100*s + t at times start + t."""
    frames = []
    for s in range(n_series):
        t = np.arange(n_rows)
        frames.append(
            pd.DataFrame(
                {"id": f"s{s}", "year": start + t, "y": 100.0 * s + t}
                | {k: v[s] for k, v in columns.items()}
            )
        )
    return pd.concat(frames, ignore_index=True)


def _spec(**extra) -> DataSpec:
    return DataSpec(**{"path": "panel.csv", "id_column": "id", "time_column": "year"} | extra)


def test_window_starts_stay_inside_each_series():
    bounds = np.array([0, 5, 9, 10])  # the third series is too short
    starts = window_starts(10, WINDOW, bounds)
    np.testing.assert_array_equal(starts, [0, 1, 2, 5, 6])
    np.testing.assert_array_equal(window_series(10, WINDOW, bounds), [0, 0, 0, 1, 1])
    rows = np.arange(10.0)[:, None]
    x, y = make_windows(rows, rows, WINDOW, bounds)
    np.testing.assert_array_equal(x[:, :, 0], [[0, 1], [1, 2], [2, 3], [5, 6], [6, 7]])
    np.testing.assert_array_equal(y[:, 0, 0], [2, 3, 4, 7, 8])
    streamed = make_dataset(rows, rows, WINDOW, batch_size=2, bounds=bounds)
    gathered = np.concatenate([batch_x.numpy() for batch_x, _ in streamed])
    np.testing.assert_array_equal(gathered, x)


def test_long_table_is_sorted_by_series_then_time():
    frame = _long().sample(frac=1.0, random_state=0)  # shuffled rows
    series = ingest.series_from_frame(frame, _spec(), "panel.csv")
    assert series.layout.ids == ("s0", "s1", "s2")
    np.testing.assert_array_equal(series.layout.bounds, [0, 12, 24, 36])
    np.testing.assert_array_equal(series.frame["y"].to_numpy()[12:15], [100, 101, 102])
    assert list(series.frame.index[:3]) == [2000, 2001, 2002]
    assert series.targets == ["y"]


def test_several_id_columns_join_into_one_key():
    frame = _long(n_series=2)
    frame["store"] = "north"
    series = ingest.series_from_frame(
        frame, _spec(id_column=["store", "id"]), "panel.csv"
    )
    assert series.layout.ids == ("north/s0", "north/s1")


@pytest.mark.parametrize(
    "change, spec, message",
    [
        (lambda f: pd.concat([f, f.iloc[[13]]]), {}, "series 's1' has two rows at time '2001'"),
        (lambda f: f.assign(id=f["id"].where(f.index != 5)), {}, "is empty at row"),
        (lambda f: f.drop(columns="id"), {}, "`data.id_column` names column(s) ['id']"),
        (
            lambda f: f.assign(region=np.where(f.index == 14, "b", "a")),
            {"static": ["region"]},
            "`data.static` column 'region' varies within series 's1'",
        ),
    ],
)
def test_bad_panel_keys_are_refused_naming_the_series(change, spec, message):
    with pytest.raises(DataError) as caught:
        ingest.series_from_frame(change(_long()), _spec(**spec), "panel.csv")
    assert message in str(caught.value)


def test_a_gap_in_one_series_names_that_series():
    frame = _long()
    frame["year"] = pd.to_datetime(frame["year"].astype(str) + "-01-01")
    gappy = frame.drop(index=20)  # series s1 loses a year
    with pytest.raises(DataError, match="series 's1': 1 time stamp"):
        ingest.series_from_frame(gappy, _spec(frequency="YS"), "panel.csv")
    found = ingest.series_from_frame(frame, _spec(frequency="YS"), "panel.csv")
    assert found.frequency == "YS"


def test_panel_keys_without_an_id_or_time_are_config_errors():
    with pytest.raises(ConfigError, match="`data.static` needs `data.id_column`"):
        load_experiment("default", ["data.static=[region]"])
    with pytest.raises(ConfigError, match="needs `data.time_column`"):
        load_experiment("default", ["data.id_column=id", "data.time_column=null"])


def _split(frame, spec, split=SplitSpec(val=3, test=3), window=WINDOW):
    series = ingest.series_from_frame(frame, spec, "panel.csv")
    found = panel.split_panel(
        series.frame, series.layout, split, spec, window, series.targets,
        series.shared_columns,
    )  # fmt: skip
    return series, found


def test_every_series_is_cut_at_the_same_time_with_window_context():
    # s1 starts three years late: the cut is by time, not by row.
    frame = pd.concat([_long(n_series=1), _long(n_series=2, n_rows=9, start=2003).iloc[9:]])
    _, found = _split(frame, _spec())
    assert found.cut == ("2006", "2009")
    train, test = found.parts["train"], found.parts["test"]
    assert train.series == ("s0", "s1")
    assert list(train.frame.index) == [*range(2000, 2006), *range(2003, 2006)]
    # test rows: 2 years of inputs before the cut, then the three test years
    assert list(test.frame.index) == [2007, 2008, 2009, 2010, 2011] * 2
    targets = test.frame.index[window_starts(len(test.frame), WINDOW, test.bounds) + 2]
    assert min(targets) == 2009  # no test target before the cut


def test_series_statistics_come_from_training_rows_only():
    series, found = _split(_long(), _spec())
    normalizer = preprocess.fit_series_normalizer(found.parts["train"], [])
    # s1's training years are 2000-2005: values 100..105
    expected = np.arange(100.0, 106.0)
    np.testing.assert_allclose(normalizer.mean[1], [expected.mean()])
    np.testing.assert_allclose(normalizer.std[1], [expected.std()])
    changed = _long()
    changed.loc[changed["year"] >= 2006, "y"] *= 50  # only val and test rows
    _, again = _split(changed, _spec())
    refit = preprocess.fit_series_normalizer(again.parts["train"], [])
    np.testing.assert_array_equal(refit.mean, normalizer.mean)
    scaled = preprocess.scale_split(found.parts["train"], normalizer, ["y"], ["y"])
    for a, b in zip(scaled.bounds[:-1], scaled.bounds[1:]):  # z-scored per series
        assert abs(scaled.targets[a:b].mean()) < 1e-6
        assert abs(scaled.targets[a:b].std() - 1) < 1e-6


def test_global_scale_shares_one_set_of_statistics():
    _, found = _split(_long(), _spec())
    normalizer = preprocess.fit_series_normalizer(found.parts["train"], [], "global")
    assert np.ptp(normalizer.mean) == 0 and np.ptp(normalizer.std) == 0


def test_short_series_are_padded_skipped_or_refused():
    # s2: 2004-2007; training ends before 2006, so it has 2 rows of the 3 a
    # window needs.
    frame = pd.concat([_long(n_series=2), _long(n_series=3, n_rows=4, start=2004).iloc[8:]])
    _, found = _split(frame, _spec())
    train = found.parts["train"]
    assert found.padded == ("s2",) and not found.skipped
    assert train.series == ("s0", "s1", "s2")
    np.testing.assert_array_equal(train.padded, [0, 0, 1])
    a, b = train.bounds[2], train.bounds[3]
    np.testing.assert_array_equal(train.frame["y"].to_numpy()[a:b], [200, 200, 201])
    assert 2 in window_series(len(train.frame), WINDOW, train.bounds)  # it lends one
    normalizer = preprocess.fit_series_normalizer(train, [])
    assert normalizer.mean[2, 0] == pytest.approx(200.5)  # not the padded 200.33
    # two training rows cannot hold a two-step target and an input: left out
    _, found = _split(frame, _spec(), window=WindowSpec(input_width=2, horizon=2))
    assert found.skipped == ("s2",) and not found.padded
    _, found = _split(frame, _spec(short_series="skip"))
    assert found.skipped == ("s2",) and found.parts["train"].series == ("s0", "s1")
    with pytest.raises(DataError, match="1 series have fewer training rows .* first 's2'"):
        _split(frame, _spec(short_series="error"))


def test_a_padded_series_is_padded_the_same_with_a_transform():
    frame = pd.concat([_long(n_series=2), _long(n_series=3, n_rows=5, start=2003).iloc[10:]])
    _, found = _split(frame, _spec(transform="diff"))
    train = found.parts["train"]
    assert found.padded == ("s2",)
    a, b = train.bounds[2], train.bounds[3]
    # rows 2003 (pad), 2003, 2004, 2005 differenced: the first change is
    # taken from the pad (0), so it counts as padding
    np.testing.assert_array_equal(train.frame["y"].to_numpy()[a:b], [0, 1, 1])
    np.testing.assert_array_equal(train.padded, [0, 0, 1])


def test_static_channels_are_one_hot_or_numeric_and_shared():
    frame = _long(region=["a", "b", "a"], size=[1.0, 2.0, 3.0])
    spec = _spec(static=["region", "size"], targets=["y"])
    series, found = _split(frame, spec)
    assert series.static_columns == ["region=a", "region=b", "size"]
    assert series.features == ["y", "region=a", "region=b", "size"]
    normalizer = preprocess.fit_series_normalizer(
        found.parts["train"], series.shared_columns
    )
    column = normalizer.columns.index("size")
    assert np.ptp(normalizer.std[:, column]) == 0  # one panel-wide scale
    scaled = preprocess.scale_split(
        found.parts["train"], normalizer, series.features, series.targets
    )
    sizes = scaled.inputs[:, series.features.index("size")]
    assert len(np.unique(sizes[:6])) == 1 and sizes[0] != sizes[-1]


def test_series_table_by_hand():
    # two series, two windows each, one step: errors 1, 3 | 2, 2
    actual = np.array([10.0, 10.0, 20.0, 20.0]).reshape(4, 1, 1)
    forecasts = {
        "model": actual + np.array([1.0, -3.0, 2.0, 2.0]).reshape(4, 1, 1),
        "persistence": actual + np.array([2.0, 2.0, 1.0, 1.0]).reshape(4, 1, 1),
    }
    scale = np.array([[2.0], [4.0]])
    owners = np.array([0, 0, 1, 1])
    table = panel_metrics.series_table(("a", "b"), owners, actual, forecasts, scale)
    model = table[table["model"] == "model"].set_index("series")
    assert model.loc["a", "mae"] == 2.0 and model.loc["b", "mae"] == 2.0
    assert model.loc["a", "mase"] == 1.0 and model.loc["b", "mase"] == 0.5
    assert model.loc["a", "nd"] == 4.0 / 20.0
    assert model.loc["a", "skill"] == 0.0 and model.loc["b", "skill"] == -1.0
    metrics = panel_metrics.aggregate(table, lambda name: f"{name}_")
    assert metrics["model_mase"] == 0.75
    assert metrics["model_series_beating_persistence"] == 0.0


def test_paired_differences_by_hand():
    # model minus persistence per series: a 1.0 - 1.0 = 0, b 0.5 - 0.25 = 0.25,
    # c 2.0 - 1.0 = 1.0; series d has no persistence row and is left out
    table = pd.DataFrame({
        "series": ["a", "b", "c", "d", "a", "b", "c"],
        "model": ["model"] * 4 + ["persistence"] * 3,
        "mase": [1.0, 0.5, 2.0, 9.0, 1.0, 0.25, 1.0],
    })  # fmt: skip
    found = panel_metrics.paired(table, "model", "persistence")
    diff = np.array([0.0, 0.25, 1.0])
    assert found.series == 3 and found.mean == pytest.approx(diff.mean())
    assert found.stderr == pytest.approx(diff.std(ddof=1) / np.sqrt(3))
    assert found.z == pytest.approx(diff.mean() / found.stderr)
    assert panel_metrics.paired(table, "model", "theta").series == 0  # absent


def test_series_scale_is_each_series_naive_error():
    levels = np.array([1.0, 2.0, 4.0, 10.0, 10.0, 13.0])[:, None]
    scale = panel_metrics.series_scale(levels, np.array([0, 3, 6]))
    np.testing.assert_allclose(scale[:, 0], [1.5, 1.5])


def test_retraining_a_panel_gates_per_series(prefect_api, mlflow_uri, tmp_path):
    from components.data.ingest import read_raw
    from components.tracking import registry as model_registry
    from flows.retrain import retrain_flow

    raw = read_raw(DataSpec(path="statsmodels:fertility"))
    some = raw[raw["country"].isin(["FRA", "NER", "JPN", "BRA", "IND", "USA"])]
    first, later = tmp_path / "first.csv", tmp_path / "later.csv"
    some[some["year"] <= 2005].to_csv(first, index=False)
    some.to_csv(later, index=False)

    def retrain(path):
        config = load_experiment(
            "fertility",
            [f"tracking.uri={mlflow_uri}", f"data.path={path}", "train.epochs=3",
             "model.units=[8]", "split.test=4", "split.val=4"],
        )  # fmt: skip
        return retrain_flow(config)

    initial = retrain(first)  # beats persistence on 2002-2005: the first champion
    assert initial.decision == "promoted", initial.reason
    again = retrain(later)
    client = MlflowClient(mlflow_uri)
    metrics = client.get_run(again.run_id).data.metrics
    # judged against the champion on the same windows, every error in units
    # of the challenger's scale of its series; wins and losses per series
    assert {"holdout_mse_scaled", "persistence_holdout_mse_scaled",
            "champion_holdout_mse_scaled"} <= set(metrics)  # fmt: skip
    assert metrics["holdout_series_won"] + metrics["holdout_series_lost"] == 6
    version = client.get_model_version("fertility", again.version)
    assert version.tags["holdout_series_won"] == f"{metrics['holdout_series_won']:g}"
    champion = model_registry.champion(mlflow_uri, "fertility")
    expected = again.version if again.decision == "promoted" else initial.version
    assert champion.version == expected


def _opposite_groups(n_series=16, n_rows=160, seed=0) -> pd.DataFrame:
    """Half the series follow x' = 0.8 x + e, half x' = -0.8 x + e: from one
    past value only the series' group tells which way the next one goes."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_series):
        phi = 0.8 if s % 2 == 0 else -0.8
        x = np.zeros(n_rows)
        for t in range(1, n_rows):
            x[t] = phi * x[t - 1] + rng.normal()
        group = "up" if phi > 0 else "flip"
        frames.append(pd.DataFrame({"id": f"s{s}", "t": np.arange(n_rows), "x": x,
                                    "group": group}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _panel_test_mse(frame: pd.DataFrame, static=(), id_embedding=0) -> float:
    """Test MSE (z-scored units) of a small MLP that sees one past value,
    trained on the panel `frame` with these static columns / embedding."""
    import keras

    from components.common import seeds
    from components.config.schema import ModelSpec, TrainSpec
    from components.models import build_model, predict
    from components.training import fit as training

    spec = DataSpec(path="groups", id_column="id", time_column="t",
                    static=list(static), targets=["x"])  # fmt: skip
    window = WindowSpec(input_width=1, horizon=1)
    series = ingest.series_from_frame(frame, spec, "groups")
    found = panel.split_panel(
        series.frame, series.layout, SplitSpec(val=0, test=40), spec, window,
        series.targets, series.shared_columns,
    )  # fmt: skip
    normalizer = preprocess.fit_series_normalizer(
        found.parts["train"], series.shared_columns
    )
    scaled = {
        name: preprocess.scale_split(
            part, normalizer, series.features, series.targets, id_embedding > 0
        )
        for name, part in found.parts.items()
    }
    x, y = make_windows(scaled["train"].inputs, scaled["train"].targets, window,
                        scaled["train"].bounds)  # fmt: skip
    seeds.seed_everything(3)
    model = build_model(
        ModelSpec(kind="mlp", units=[16], skip="none", id_embedding=id_embedding),
        x.shape[1:], y.shape[1:], 3, n_series=len(scaled["train"].series),
    )  # fmt: skip
    training.compile_model(model, TrainSpec(learning_rate=0.01))
    model.fit(x, y, batch_size=64, epochs=30, verbose=0, shuffle=True)
    x_test, y_test = make_windows(scaled["test"].inputs, scaled["test"].targets,
                                  window, scaled["test"].bounds)  # fmt: skip
    keras.backend.clear_session()
    return float(np.mean((predict(model, x_test) - y_test) ** 2))


def test_a_static_category_that_matters_is_learned():
    frame = _opposite_groups()
    without = _panel_test_mse(frame)
    with_group = _panel_test_mse(frame, ["group"])
    # Without the group the best guess from one value is about 0 (MSE near
    # 1 on z-scored series); with it, 0.8 x either way (noise only, ~0.36).
    assert without > 0.8
    assert with_group < 0.6 * without


def test_a_series_id_embedding_learns_what_no_column_says():
    """The same panel without its `group` column: a learned embedding of
    each series finds which way each one goes."""
    frame = _opposite_groups().drop(columns="group")
    without = _panel_test_mse(frame)
    embedded = _panel_test_mse(frame, id_embedding=2)
    assert without > 0.8
    assert embedded < 0.6 * without


def test_a_series_embedding_outside_a_panel_is_refused():
    with pytest.raises(ConfigError, match="`model.id_embedding: 4` embeds each series"):
        load_experiment("default", ["model.id_embedding=4"])
    with pytest.raises(ConfigError, match="model.id_embedding"):
        load_experiment("fertility", ["model.id_embedding=-1"])
    assert load_experiment("fertility", ["model.id_embedding=4"]).model.id_embedding == 4


def test_the_series_index_channel_is_each_windows_own_series():
    frame = _long(n_series=3, n_rows=12)
    series = ingest.series_from_frame(frame, _spec(targets=["y"]), "panel.csv")
    found = panel.split_panel(series.frame, series.layout, SplitSpec(val=2, test=2),
                              _spec(targets=["y"]), WINDOW, series.targets)  # fmt: skip
    normalizer = preprocess.fit_series_normalizer(found.parts["train"], [])
    plain, indexed = (
        preprocess.scale_split(found.parts["test"], normalizer, ["y"], ["y"], flag)
        for flag in (False, True)
    )
    assert indexed.inputs.shape == (plain.inputs.shape[0], 2)
    np.testing.assert_array_equal(indexed.features, plain.inputs)
    # each series' test part: 2 rows of context + 2 test rows
    np.testing.assert_array_equal(indexed.inputs[:, 1], [0] * 4 + [1] * 4 + [2] * 4)
    x, _ = make_windows(indexed.inputs, indexed.targets, WINDOW, indexed.bounds)
    owners = window_series(len(indexed.inputs), WINDOW, indexed.bounds)
    np.testing.assert_array_equal(x[:, :, 1], np.repeat(owners[:, None], 2, axis=1))


def test_a_panel_training_resumed_with_drawn_windows_equals_one_straight_through(
    tmp_path,
):
    """Resume on a panel: each epoch's per-series draw
    (`train.windows_per_series`) comes from its number, and the series
    embedding's weights come back with the rest."""
    from components.config.schema import ModelSpec, TrainSpec
    from components.models import build_model
    from components.training import checkpoint
    from components.training import fit as training

    frame = _opposite_groups(n_series=6, n_rows=60).drop(columns="group")
    spec = DataSpec(path="groups", id_column="id", time_column="t", targets=["x"])
    window = WindowSpec(input_width=4, horizon=1)
    series = ingest.series_from_frame(frame, spec, "groups")
    found = panel.split_panel(series.frame, series.layout, SplitSpec(val=10, test=0.1),
                              spec, window, series.targets)  # fmt: skip
    normalizer = preprocess.fit_series_normalizer(found.parts["train"], [])
    scaled = {name: preprocess.scale_split(part, normalizer, ["x"], ["x"], True)
              for name, part in found.parts.items()}  # fmt: skip
    fit = TrainSpec(epochs=10, patience=0, learning_rate=0.02, windows_per_series=8)

    def train(folder=None, resume=None, stop_after=None):
        start = resume.epoch if resume else 0
        part = scaled["train"]
        train_ds = make_dataset(part.inputs, part.targets, window, 8, True, 5, start,
                                part.bounds, per_series=8)  # fmt: skip
        val = scaled["val"]
        val_ds = make_dataset(val.inputs, val.targets, window, 8, bounds=val.bounds)
        model = build_model(ModelSpec(kind="gru", units=[4], id_embedding=2),
                            (4, 2), (1, 1), seed=3, n_series=6)  # fmt: skip
        training.compile_model(model, fit)

        def interrupt(epoch, logs):
            if epoch == stop_after:
                raise KeyboardInterrupt

        hooks = [interrupt] if stop_after else []
        return model, training.fit_model(model, train_ds, val_ds, fit, hooks, folder,
                                         resume)  # fmt: skip

    straight, expected = train()
    with checkpoint.claim(tmp_path, "key", "run-1") as folder:
        with pytest.raises(KeyboardInterrupt):
            train(folder, stop_after=5)
    with checkpoint.claim(tmp_path, "key", "run-2") as folder:
        state = folder.load()
        resumed, result = train(folder, resume=state)
    assert result.resumed_from_epoch == state.epoch + 1 > 1
    np.testing.assert_allclose(result.history["loss"], expected.history["loss"],
                               rtol=1e-5)  # fmt: skip
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_wide_table_read_as_a_panel_has_one_series_per_column():
    wide = pd.DataFrame(
        {"year": np.arange(2000, 2012), "north": np.arange(12.0), "south": np.arange(12.0) * 2}
    )
    spec = DataSpec(path="wide.csv", time_column="year", layout="panel")
    series = ingest.series_from_frame(wide, spec, "wide.csv")
    assert series.layout.ids == ("north", "south")
    assert series.targets == ["value"]
    np.testing.assert_array_equal(series.frame["value"].to_numpy()[12:14], [0.0, 2.0])
    only = DataSpec(path="wide.csv", time_column="year", layout="panel", targets=["south"])
    assert ingest.series_from_frame(wide, only, "wide.csv").layout.ids == ("south",)
    with pytest.raises(ConfigError, match="leave `data.features`"):
        load_experiment("default", ["data.layout=panel", "data.time_column=YEAR",
                                    "data.features=[a]"])  # fmt: skip


def test_a_folder_partitioned_by_series_reads_like_the_long_table(tmp_path):
    frame = _long(extra=[np.zeros(12)] * 3)
    for series, part in frame.groupby("id"):
        folder = tmp_path / "panel" / f"id={series}"
        folder.mkdir(parents=True)
        part.drop(columns="id").to_parquet(folder / "part-0.parquet", index=False)
    spec = _spec(path=str(tmp_path / "panel"), targets=["y"], features=["y"])
    from_folder = ingest.load_series(spec)
    from_frame = ingest.series_from_frame(
        frame, _spec(targets=["y"], features=["y"]), "panel.csv"
    )
    assert from_folder.layout.ids == ("s0", "s1", "s2")
    assert list(from_folder.frame.columns) == ["y"]  # `extra` was never read
    assert from_folder.digest == from_frame.digest
    with pytest.raises(DataError, match=r"column\(s\) \['z'\] named in `data`"):
        ingest.load_series(_spec(path=str(tmp_path / "panel"), targets=["z"], features=["y"]))


def test_panel_intervals_scale_with_each_series():
    from components.evaluation import intervals

    rng = np.random.default_rng(0)
    # two series, one 100 times the scale of the other, the same shape of error
    scale = np.array([[1.0]] * 200 + [[100.0]] * 200)
    errors = rng.normal(size=(400, 1, 1)) * scale[:, None, :]
    test_errors = rng.normal(size=(400, 1, 1)) * scale[:, None, :]
    zeros = np.zeros((400, 1, 1))
    metrics, radii = intervals.conformal_intervals(
        errors, zeros, test_errors, zeros, [0.8], scale, scale
    )
    assert abs(metrics["test_coverage_80"] - 0.8) < 0.05
    small, large = np.abs(test_errors[:200]), np.abs(test_errors[200:])
    assert abs(np.mean(small <= radii[0.8][0, 0]) - 0.8) < 0.07  # each series
    assert abs(np.mean(large <= 100 * radii[0.8][0, 0]) - 0.8) < 0.07
    # One radius for both covers 80 % overall, but not per series: the small
    # series is always inside, the large one far less often.
    _, one = intervals.conformal_intervals(errors, zeros, test_errors, zeros, [0.8])
    assert np.mean(small <= one[0.8][0, 0]) == 1.0
    assert np.mean(large <= one[0.8][0, 0]) < 0.7


def test_windows_per_series_draws_a_capped_sample_every_epoch():
    window = WindowSpec(input_width=2, horizon=1)
    # series 0: 102 rows (100 windows), series 1: 7 rows (5 windows)
    bounds = np.array([0, 102, 109])
    rows = np.concatenate([np.zeros(102), np.ones(7)])[:, None]
    index = np.arange(109.0)[:, None]  # which row a target came from
    data = np.hstack([rows, index])
    dataset = make_dataset(data, data, window, batch_size=4, shuffle=True, seed=1,
                           bounds=bounds, per_series=5)  # fmt: skip
    epochs = []
    for _ in range(2):
        targets = np.concatenate([y.numpy()[:, 0, :] for _, y in dataset])
        assert len(targets) == 10  # 5 from each series
        assert (targets[:, 0] == 0).sum() == 5 and (targets[:, 0] == 1).sum() == 5
        epochs.append(set(targets[targets[:, 0] == 0, 1]))
    assert epochs[0] != epochs[1]  # a new draw of the long series every epoch
    assert len(dataset) == 3  # ceil(10 / 4) batches, known to Keras


def test_windows_per_series_needs_the_streamed_loop():
    with pytest.raises(ConfigError, match="`train.windows_per_series` draws"):
        load_experiment("fertility", ["train.windows_per_series=5", "train.loop=compiled"])
    from components.training import fit as training

    spec = load_experiment("fertility", ["train.windows_per_series=5"]).train
    window = WindowSpec(input_width=10, horizon=3)
    assert not training.use_compiled_loop(spec, {"train": 100, "val": 10}, window, 1, 1)


def test_a_panel_snapshot_is_refused_with_the_reason():
    from conftest import run_cli_here

    done = run_cli_here(["data", "snapshot", "fertility"])
    assert done.returncode != 0
    assert "writes one series; a panel" in done.stdout + done.stderr


def test_a_panel_fold_cuts_every_series_on_the_shared_time_axis():
    from components.evaluation.backtest import Fold, axis_length, fold_rows

    frame = _long(n_series=3, n_rows=12)
    late = _long(n_series=1, n_rows=4, start=2010).assign(id="late")  # 2010-2013
    series = ingest.series_from_frame(pd.concat([frame, late]), _spec(), "panel.csv")
    assert axis_length(series) == 14  # 2000-2013
    fold = Fold(index=0, start=2, stop=10, val_rows=2, test_rows=2)  # 2002-2009
    rows = fold_rows(series, fold)
    assert rows.layout.ids == ("s0", "s1", "s2")  # "late" has no row before 2010
    assert list(rows.layout.bounds) == [0, 8, 16, 24]
    times = rows.frame.index
    assert times.min() == 2002 and times.max() == 2009


def test_selecting_rows_equals_preparing_each_series_when_nothing_changes():
    """The fast path (no gaps, no transform, no known columns) gives what
    the per-series path gives: ragged series, one padded, context rows."""
    frame = _long(n_series=4, n_rows=30, extra=[np.arange(30.0) * s for s in range(4)])
    frame = frame[~((frame["id"] == "s1") & (frame["year"] < 2010))]  # starts late
    frame = frame[~((frame["id"] == "s2") & (frame["year"] > 2024))]  # ends early
    frame = frame[~((frame["id"] == "s3") & (frame["year"] > 2002))]  # too short
    spec = _spec(targets=["y"], features=["y", "extra"])
    series = ingest.series_from_frame(frame, spec, "panel.csv")
    window = WindowSpec(input_width=3, horizon=2)
    cut = panel.time_cut(series.frame.index, SplitSpec(val=5, test=5))
    ranges = panel.split_bounds(series.frame.index, series.layout, cut, context=3)
    plan, kept, skipped, padded = panel.plan_rows(ranges, spec, window)
    assert kept == [0, 1, 2, 3] and not skipped and padded == [3]
    keys = tuple(series.layout.ids)
    fast = panel._select_rows(series.frame, plan, ["y"], keys)
    slow = panel._prepare_each_series(series.frame, plan, spec, window, ["y"], [], keys)
    for name in ("train", "val", "test"):
        pd.testing.assert_frame_equal(fast[name].frame, slow[name].frame)
        pd.testing.assert_frame_equal(fast[name].levels, slow[name].levels)
        np.testing.assert_array_equal(fast[name].bounds, slow[name].bounds)
        assert fast[name].series == slow[name].series
    np.testing.assert_array_equal(fast["train"].padded, [0, 0, 0, 2])
    assert len(fast["test"].frame) == 2 * (5 + 3)  # s2, s3 end before the test split
