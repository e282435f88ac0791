"""Panels: accuracy on a real panel and cost at scale.

Real: the fertility panel (World Bank births per woman, 210 countries,
1960-2011, shipped with statsmodels; conf/experiments/fertility.yaml). Each
network kind is trained once as one global model; printed beside it are the
per-series baselines every panel run is scored against (persistence, the
global linear AR on per-series scaled windows) and, here only, ETS with a
damped trend refitted per series at every test origin on everything before
it (statsmodels). MASE is each series' MAE over its in-sample naive error,
averaged over series; "beats" is the share of series where the MAE is below
persistence's.

Scale: a synthetic panel (`--series` x `--rows`, AR(1) series of random
level, scale and coefficient) run through ingest, the time cut and the
per-series scaling, then windows streamed by `make_dataset`, and a few
epochs of a GRU. Prints seconds per stage, windows per second and peak RSS
(ratios against the rows' own size, measured in the same run).

Side by side (`--part nf`): the same synthetic panel written as
hive-partitioned Parquet (one folder per series), the last 6 rows of every
series held out; rnnflow streamed from the files (`data.stream`) and
NeuralForecast's LSTM (`bench/neuralforecast_lstm.py`, run by the Python of
an environment that has neuralforecast), each in its own process, runs
interleaved; `--mode defaults` (each as it ships, the same windows trained)
or `same-model` (one LSTM layer of 32 on both sides). Prints MAE and MASE of
the held-out rows, windows/s over two clocks, seconds and peak RSS, medians.

Streamed against in-memory (`--part stream`): synthetic panels of
`--sizes` series written as Parquet shards, each side in a fresh process:
prepare seconds, one epoch of windows, GRU training windows/s and peak RSS.

    python bench/panel.py                       # both parts, defaults
    python bench/panel.py --part scale --series 10000 --rows 1000
    python bench/panel.py --part nf --series 10000 --rows 1000 --mode defaults \
        --repeats 3 --nf-python /tmp/nf/bin/python
    python bench/panel.py --part stream --sizes 10000,50000,200000 --rows 1000
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def real(kinds: list[str], epochs: int | None) -> None:
    from components.config.loading import load_experiment
    from flows.train import train_flow

    folder = Path(tempfile.mkdtemp(prefix="rnnflow-panel-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    rows, report = {}, None
    for kind in kinds:
        overrides = [f"tracking.uri={uri}", f"model.kind={kind}"]
        if epochs:
            overrides.append(f"train.epochs={epochs}")
        config = load_experiment("fertility", overrides)
        result = train_flow(config)
        m = result.metrics
        rows[kind] = _row(m, "test_", m["train_seconds"])
        report = report or (config, result.evaluation)
        if "linear" not in rows:
            rows["persistence"] = _row(m, "baseline_persistence_test_")
            rows["linear"] = _row(m, "baseline_linear_test_")
    config, evaluation = report
    start = time.perf_counter()
    rows["ets (refit per origin)"] = _ets_row(config, evaluation)
    rows["ets (refit per origin)"]["seconds"] = time.perf_counter() - start
    print(f"\nfertility panel, {len(evaluation.series)} series, test windows "
          f"{len(evaluation.actual)}, horizon {config.window.horizon}")  # fmt: skip
    print(f"{'':<24}{'mase':>8}{'smape':>8}{'nd':>8}{'mae':>9}{'beats':>7}{'s':>7}"
          f"{'cover 80/95':>13}")  # fmt: skip
    for name, r in rows.items():
        beats = "" if r.get("beats") is None else f"{r['beats']:.0%}"
        seconds = "" if r.get("seconds") is None else f"{r['seconds']:.1f}"
        cover = r.get("coverage", [None])
        cover = "" if cover[0] is None else "/".join(f"{c:.0%}" for c in cover)
        print(
            f"{name:<24}{r['mase']:>8.3f}{r['smape']:>8.2f}{r['nd']:>8.4f}"
            f"{r['mae']:>9.4f}{beats:>7}{seconds:>7}{cover:>13}"
        )


def _row(metrics: dict, prefix: str, seconds: float | None = None) -> dict:
    return {
        "mase": metrics[f"{prefix}mase"],
        "smape": metrics[f"{prefix}smape"],
        "nd": metrics[f"{prefix}nd"],
        "mae": metrics[f"{prefix}mae_raw"],
        "beats": metrics.get(f"{prefix}series_beating_persistence"),
        "seconds": seconds,
        "coverage": [metrics.get(f"{prefix}coverage_{v}") for v in ("80", "95")],
    }


def _ets_row(config, evaluation) -> dict:
    """Damped-trend ETS per series, refitted at every test origin on the
    series' filled levels before it; scored like the panel's forecasts."""
    import warnings

    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    from components.data import ingest
    from components.evaluation import evaluate as scoring
    from components.evaluation import panel_metrics

    series = ingest.load_series(config.data)
    horizon = config.window.horizon
    levels = {}
    for j, name in enumerate(series.layout.ids):
        a, b = series.layout.bounds[j], series.layout.bounds[j + 1]
        part = series.frame[series.targets[0]].iloc[a:b]
        levels[name] = part.interpolate(limit_area="inside").ffill()
    forecast = np.zeros_like(evaluation.actual)
    for w, (j, t0) in enumerate(zip(evaluation.window_series, evaluation.time_index)):
        history = levels[evaluation.series[j]]
        history = history[history.index < t0].dropna().to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = ExponentialSmoothing(history, trend="add", damped_trend=True).fit()
        forecast[w, :, 0] = fitted.forecast(horizon)
    train_levels, bounds = [], [0]
    for j, name in enumerate(evaluation.series):
        cut = levels[name][levels[name].index < _val_start(config, series)]
        train_levels.append(cut.to_numpy())
        bounds.append(bounds[-1] + len(cut))
    scale = panel_metrics.series_scale(
        np.concatenate(train_levels)[:, None], np.asarray(bounds)
    )
    table = panel_metrics.series_table(
        evaluation.series, evaluation.window_series, evaluation.actual,
        {"ets": forecast, "persistence": evaluation.forecasts["persistence"]}, scale,
    )  # fmt: skip
    ets = table[table["model"] == "ets"]
    pooled = scoring.scale_free(evaluation.actual, forecast)
    return {
        "mase": float(ets["mase"].mean()),
        "smape": pooled["smape"],
        "nd": pooled["nd"],
        "mae": float(np.mean(np.abs(forecast - evaluation.actual))),
        "beats": float(np.mean(ets["skill"] > 0)),
    }


def _val_start(config, series):
    from components.data.panel import time_cut

    return time_cut(series.frame.index, config.split).val_from


def synthetic_panel(n_series: int, n_rows: int, seed: int = 0) -> pd.DataFrame:
    """A long frame (id, t, y) of AR(1) series with random coefficient,
    level and scale."""
    rng = np.random.default_rng(seed)
    phi = rng.uniform(-0.9, 0.95, n_series)[:, None]
    noise = rng.normal(size=(n_series, n_rows)).astype(np.float32)
    values = np.zeros_like(noise)
    for t in range(1, n_rows):
        values[:, t] = phi[:, 0] * values[:, t - 1] + noise[:, t]
    values = values * rng.uniform(1, 100, (n_series, 1)) + rng.uniform(-50, 50, (n_series, 1))
    return pd.DataFrame(
        {
            "id": np.repeat([f"s{i:05d}" for i in range(n_series)], n_rows),
            "t": np.tile(np.arange(n_rows), n_series),
            "y": values.ravel().astype(np.float64),
        }
    )


def scale(n_series: int, n_rows: int, epochs: int) -> None:
    from components.config.schema import DataSpec, SplitSpec, WindowSpec
    from components.data import ingest, panel, preprocess
    from components.data.windowing import make_dataset, window_starts

    stamps = {}

    def stage(name, start):
        stamps[name] = time.perf_counter() - start

    start = time.perf_counter()
    frame = synthetic_panel(n_series, n_rows)
    stage("make the long frame", start)
    row_bytes = n_series * n_rows * 4  # the values alone, float32
    spec = DataSpec(path="synthetic", id_column="id", time_column="t", targets=["y"])
    window = WindowSpec(input_width=24, horizon=6)
    start = time.perf_counter()
    series = ingest.series_from_frame(frame, spec, "synthetic")
    stage("ingest (sort, check keys)", start)
    start = time.perf_counter()
    found = panel.split_panel(
        series.frame, series.layout, SplitSpec(val=0.1, test=0.1), spec, window,
        series.targets, series.shared_columns,
    )  # fmt: skip
    stage("time cut per series", start)
    start = time.perf_counter()
    normalizer = preprocess.fit_series_normalizer(found.parts["train"], [])
    train = preprocess.scale_split(found.parts["train"], normalizer, ["y"], ["y"])
    stage("per-series scaling", start)
    del frame
    n_windows = len(window_starts(len(train.inputs), window, train.bounds))
    dataset = make_dataset(
        train.inputs, train.targets, window, 1024, shuffle=True, seed=0,
        bounds=train.bounds,
    )  # fmt: skip
    start = time.perf_counter()
    for _ in dataset:
        pass
    stage("one epoch of windows (tf.data)", start)
    gru = _train_gru(dataset, window, epochs)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nsynthetic panel: {n_series} series x {n_rows} rows, "
          f"{n_windows} training windows (width {window.input_width}, "
          f"horizon {window.horizon})")  # fmt: skip
    for name, seconds in stamps.items():
        print(f"  {name:<34}{seconds:>8.2f} s")
    epoch = stamps["one epoch of windows (tf.data)"]
    print(f"  pipeline: {n_windows / epoch:,.0f} windows/s")
    print(f"  GRU(32) training: {n_windows * epochs / gru:,.0f} windows/s "
          f"({epochs} epochs in {gru:.1f} s)")  # fmt: skip
    print(f"  peak RSS {rss / 2**30:.2f} GiB = {rss / row_bytes:.1f} x the rows "
          f"({row_bytes / 2**20:.0f} MiB as float32)")  # fmt: skip


def _train_gru(dataset, window, epochs: int, steps: int | None = None) -> float:
    from components.common import seeds
    from components.config.schema import ModelSpec, TrainSpec
    from components.models import build_model
    from components.training import fit as training

    seeds.seed_everything(0)
    model = build_model(
        ModelSpec(kind="gru", units=[32], skip="none"),
        (window.input_width, 1), (window.horizon, 1), 0,
    )  # fmt: skip
    training.compile_model(model, TrainSpec(learning_rate=0.003))
    model.fit(dataset.take(2), epochs=1, verbose=0)  # trace outside the clock
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start


# The side-by-side run. `defaults`: each library as it ships for a panel, only
# the window, horizon and the windows trained made equal; `same-model`: one
# LSTM layer of 32 on both sides, at NeuralForecast's default sampling (32
# series per step, 128 windows per step).
NF_MODES = {
    "defaults": {
        "nf": {},  # LSTM(h, input_size): 2 x 128 encoder, 2 x 128 MLP decoder, MAE,
        # robust scaler, 32 series and 128 windows per step (neuralforecast 3.3.0)
        "rnnflow": {"kinds": ["gru"], "units": [32], "batch_size": 32},
    },
    "same-model": {
        "nf": {"encoder_n_layers": 1, "encoder_hidden_size": 32, "decoder_layers": 1},
        "rnnflow": {"kinds": ["lstm", "gru"], "units": [32], "batch_size": 128},
    },
}
NF_WINDOW = {"input_width": 24, "horizon": 6, "nf_steps": 1000, "nf_windows_per_step": 128}


def versus_neuralforecast(
    n_series: int, n_rows: int, mode: str, repeats: int, nf_python: str
) -> None:
    """rnnflow (streamed from the files, `data.stream`) and NeuralForecast's
    LSTM (`bench/neuralforecast_lstm.py`, its own environment) on one
    synthetic panel written as hive-partitioned Parquet, the last `horizon`
    rows of every series held out; each side in its own process, the runs
    interleaved `repeats` times (the order alternating); medians.

    Both train on about the same number of windows: NeuralForecast's default
    1,000 steps of 128; rnnflow one epoch of the nearest whole number of
    windows per series at or above it (windows/s from each side's own
    count). Two clocks on each side: `fit` (NeuralForecast's `fit()`,
    its dataset building included; rnnflow's `model.fit`, its trace left
    out) and `files -> model` (reading the files, rnnflow's scan, building:
    everything before the forecast)."""
    import json
    import subprocess

    settings = {**NF_WINDOW, **NF_MODES[mode], "mode": mode}
    horizon = settings["horizon"]
    folder = Path(tempfile.mkdtemp(prefix="rnnflow-vs-nf-"))
    (folder / "settings.json").write_text(json.dumps(settings))
    subprocess.run(
        [sys.executable, __file__, "--part", "write", "--series", str(n_series),
         "--rows", str(n_rows), "--folder", str(folder)],
        check=True,
    )  # fmt: skip
    truth = np.load(folder / "truth.npz")
    actual, naive = truth["actual"], truth["naive"]  # (S, T), (S,) MASE scale
    sides = [f"rnnflow {k}" for k in settings["rnnflow"]["kinds"]] + ["neuralforecast"]
    found = {side: [] for side in sides}
    for r in range(repeats):
        for side in sides if r % 2 == 0 else sides[::-1]:
            if side == "neuralforecast":
                command = [nf_python, str(Path(__file__).with_name("neuralforecast_lstm.py")),
                           str(folder)]  # fmt: skip
            else:
                command = [sys.executable, __file__, "--part", "nf-rnnflow", "--folder",
                           str(folder), "--kind", side.split()[-1]]  # fmt: skip
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode:
                sys.exit(f"{side} failed:\n{run.stderr[-3000:]}")
            cost = json.loads(run.stdout.strip().splitlines()[-1])
            forecast = pd.read_parquet(folder / cost["forecast"])
            forecast = forecast.sort_values(["id", "step"])["y_hat"].to_numpy()
            cost["forecast"] = forecast.reshape(n_series, horizon)
            found[side].append(cost)
            print(f"{side} run {r + 1}: fit {cost['fit_s']:.1f} s, files -> model "
                  f"{cost['total_s']:.1f} s, RSS {cost['rss'] / 2**30:.2f} GiB",
                  file=sys.stderr)  # fmt: skip
    budget = settings["nf_steps"] * settings["nf_windows_per_step"]
    print(f"\n{n_series} series x {n_rows} rows ({mode}), window "
          f"{settings['input_width']} -> {horizon}, NeuralForecast {budget:,} training "
          f"windows, rnnflow one epoch of {found[sides[0]][0]['windows']:,}; medians of "
          f"{repeats} interleaved runs")  # fmt: skip
    print(f"{'':<18}{'MAE':>9}{'MASE':>8}{'fit w/s':>10}{'files->model w/s':>18}"
          f"{'fit s':>8}{'total s':>9}{'RSS GiB':>9}")  # fmt: skip
    last = np.repeat(truth["last"][:, None], horizon, axis=1)
    error = np.abs(last - actual)
    print(f"{'persistence':<18}{error.mean():>9.3f}"
          f"{np.mean(error.mean(axis=1) / naive):>8.3f}")  # fmt: skip
    for side, runs in found.items():
        error = np.abs(runs[0]["forecast"] - actual)
        windows = runs[0].get("windows", settings["nf_steps"] * settings["nf_windows_per_step"])
        fit, total = (float(np.median([c[k] for c in runs])) for k in ("fit_s", "total_s"))
        rss = float(np.median([c["rss"] for c in runs]))
        print(f"{side:<18}{error.mean():>9.3f}{np.mean(error.mean(axis=1) / naive):>8.3f}"
              f"{windows / fit:>10,.0f}{windows / total:>18,.0f}{fit:>8.1f}{total:>9.1f}"
              f"{rss / 2**30:>9.2f}")  # fmt: skip
        spread = [c["fit_s"] for c in runs]
        print(f"{'':<18}fit s of each run: {', '.join(f'{v:.1f}' for v in spread)}")


def write_panel(n_series: int, n_rows: int, folder: Path, horizon: int) -> None:
    """The side-by-side panel: its training rows as hive-partitioned Parquet
    (FOLDER/panel), and in FOLDER/truth.npz each series' held-out last
    `horizon` values, its last training value and its in-sample naive MAE."""
    frame = synthetic_panel(n_series, n_rows)
    held_out = (frame["t"] >= n_rows - horizon).to_numpy()
    values = frame["y"].to_numpy().reshape(n_series, n_rows)
    history = values[:, : n_rows - horizon]
    np.savez(
        folder / "truth.npz", actual=values[:, n_rows - horizon :],
        last=history[:, -1], naive=np.abs(np.diff(history, axis=1)).mean(axis=1),
    )  # fmt: skip
    start = time.perf_counter()
    frame[~held_out].to_parquet(folder / "panel", partition_cols=["id"])
    print(f"wrote {n_series} x {n_rows - horizon} training rows as partitioned "
          f"Parquet in {time.perf_counter() - start:.1f} s: {folder / 'panel'}",
          file=sys.stderr)  # fmt: skip


def rnnflow_side(folder: Path, kind: str) -> dict:
    """rnnflow as a user runs it on these files with `data.stream: true`:
    scan (statistics of each series' rows; the last time stamp is the
    scan's one-row test split, so training stops one row short), the panel
    defaults (per-series scaling, window norm revin, MAE), one whole epoch
    of at most ceil(budget / series) windows of each series (13 here: the
    budget plus 1.6 %; an epoch cut short would wait for the shard being
    read), then the streamed forecast of every series' held-out rows. No validation split here, so
    `skip: auto` has nothing to choose by: none."""
    import json

    from components.config.schema import (
        DataSpec, ModelSpec, SplitSpec, TrainSpec, WindowSpec,
    )  # fmt: skip
    from components.data import stream
    from components.serving.streamed import forecast_panel
    from components.training.builder import build_for_training

    start = time.perf_counter()  # imports left out, as on NeuralForecast's side
    settings = json.loads((folder / "settings.json").read_text())
    ours = settings["rnnflow"]
    batch = ours["batch_size"]
    window = WindowSpec(input_width=settings["input_width"], horizon=settings["horizon"])
    data = DataSpec(path=str(folder / "panel"), id_column="id", time_column="t",
                    targets=["y"], stream=True, short_series="skip")  # fmt: skip
    panel = stream.scan_panel(data, SplitSpec(val=0, test=1), window)
    budget = settings["nf_steps"] * settings["nf_windows_per_step"]
    cap = -(-budget // len(panel.series))  # one whole epoch, as `rnnflow train` runs
    train = TrainSpec(batch_size=batch, learning_rate=1e-3, loss="mae", windows_per_series=cap)
    spec = ModelSpec(kind=kind, units=ours["units"], skip="none", window_norm="revin")
    model = build_for_training(spec, train, window, stream.sample_splits(panel)["train"],
                               (0,)).model  # fmt: skip
    model.fit(stream.dataset(panel, "train", batch, cap, seed=1).take(2), epochs=1,
              verbose=0)  # the trace  # fmt: skip
    dataset = stream.dataset(panel, "train", batch, cap, seed=0)
    fitting = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    fit = time.perf_counter() - fitting
    total = time.perf_counter() - start
    out = folder / f"rnnflow_{kind}.parquet"
    out.unlink(missing_ok=True)
    forecast_panel(model, panel.normalizer, data, window, str(out))
    forecast = pd.read_parquet(out).rename(columns={"y": "y_hat"})
    forecast[["id", "step", "y_hat"]].to_parquet(out)
    return {"fit_s": fit, "total_s": total, "rss": _peak_rss(), "forecast": out.name,
            "windows": stream.epoch_windows(panel, "train", cap)}  # fmt: skip


def _peak_rss() -> int:
    """This process's peak resident memory (VmHWM), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# Streamed against in-memory (`--part stream`): the same panel on disk,
# each side in a fresh process so its peak RSS is its own.
STREAM_SETTINGS = {"input_width": 24, "horizon": 6, "batch_size": 1024,
                   "windows_per_series": 16, "steps": 200}  # fmt: skip


def write_shards(n_series: int, n_rows: int, folder: Path, per_file: int = 1000) -> None:
    """A synthetic panel as hive-partitioned Parquet (`shard=k`, `per_file`
    whole series per file), written chunk by chunk: the writer never holds
    more than one chunk."""
    start = time.perf_counter()
    for k, first in enumerate(range(0, n_series, per_file)):
        count = min(per_file, n_series - first)
        frame = synthetic_panel(count, n_rows, seed=k)
        frame["id"] = np.repeat([f"s{first + i:06d}" for i in range(count)], n_rows)
        frame["y"] = frame["y"].astype(np.float32)
        (folder / f"shard={k:04d}").mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / f"shard={k:04d}" / "part.parquet", index=False)
    print(f"wrote {n_series} x {n_rows} rows in {time.perf_counter() - start:.0f} s: "
          f"{folder}", file=sys.stderr)  # fmt: skip


def stream_one(folder: Path, side: str) -> dict:
    """One side on the panel in `folder`: prepare (scan, or read + cut +
    scale), one whole epoch of the window pipeline, `steps` training steps of
    a GRU(32); seconds, windows/s and this process's peak RSS."""
    from components.config.schema import DataSpec, SplitSpec, WindowSpec
    from components.data import stream

    settings = STREAM_SETTINGS
    window = WindowSpec(input_width=settings["input_width"], horizon=settings["horizon"])
    spec = DataSpec(path=str(folder), id_column="id", time_column="t", targets=["y"],
                    features=["y"],  # not the `shard=k` folder key
                    stream=side == "stream", short_series="skip")  # fmt: skip
    split, batch, cap = SplitSpec(val=0.1, test=0.1), settings["batch_size"], settings["windows_per_series"]
    start = time.perf_counter()
    if side == "stream":
        panel = stream.scan_panel(spec, split, window)
        prepared = time.perf_counter() - start
        windows = stream.epoch_windows(panel, "train", cap)

        def make():
            return stream.dataset(panel, "train", batch, cap, seed=0)
    else:
        from components.data import ingest, panel as panels, preprocess
        from components.data.windowing import make_dataset

        series = ingest.load_series(spec)
        found = panels.split_panel(series.frame, series.layout, split, spec, window, ["y"])
        normalizer = preprocess.fit_series_normalizer(found.parts["train"], [])
        train = preprocess.scale_split(found.parts["train"], normalizer, ["y"], ["y"])
        del series, found
        prepared = time.perf_counter() - start
        counts = np.diff(train.bounds) - window.span + 1
        windows = int(np.minimum(np.maximum(counts, 0), cap).sum())

        def make():
            return make_dataset(train.inputs, train.targets, window, batch, True, 0,
                                bounds=train.bounds, per_series=cap)  # fmt: skip
    start = time.perf_counter()
    n = sum(int(x.shape[0]) for x, _ in make())
    epoch = time.perf_counter() - start
    assert n == windows, (n, windows)
    seconds = _train_gru(make().repeat(), window, 1, settings["steps"])
    return {
        "side": side, "windows": windows, "prepare_s": prepared, "epoch_s": epoch,
        "pipeline_wps": windows / epoch,
        "train_wps": settings["steps"] * batch / seconds,
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }  # fmt: skip


def streamed_against_memory(sizes: list[int], n_rows: int, memory_max: int) -> None:
    """Each size written once, then each side in its own process; in-memory
    only up to `memory_max` series (beyond, it does not fit this machine)."""
    import json
    import subprocess

    rows = []
    for n_series in sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"rnnflow-stream-{n_series}-"))
        subprocess.run([sys.executable, __file__, "--part", "write-shards", "--series",
                        str(n_series), "--rows", str(n_rows), "--folder", str(folder)],
                       check=True)  # fmt: skip
        for side in ("stream", "memory"):
            if side == "memory" and n_series > memory_max:
                continue
            run = subprocess.run(
                [sys.executable, __file__, "--part", "stream-one", "--folder",
                 str(folder), "--side", side], capture_output=True, text=True,
            )  # fmt: skip
            if run.returncode:
                sys.exit(f"{side} at {n_series} failed:\n{run.stderr[-3000:]}")
            found = json.loads(run.stdout.strip().splitlines()[-1])
            rows.append({"series": n_series, **found})
            print(json.dumps(rows[-1]), file=sys.stderr)
        import shutil

        shutil.rmtree(folder)
    first = next(r["rss"] for r in rows if r["side"] == "stream")
    print(f"\n{n_rows} rows per series; window {STREAM_SETTINGS['input_width']} -> "
          f"{STREAM_SETTINGS['horizon']}, {STREAM_SETTINGS['windows_per_series']} "
          f"windows per series per epoch, GRU(32), batch {STREAM_SETTINGS['batch_size']}")
    print(f"{'series':>8}{'side':>8}{'windows':>11}{'prepare s':>11}{'epoch s':>9}"
          f"{'pipeline w/s':>14}{'train w/s':>11}{'RSS GiB':>9}{'RSS / first':>13}")
    for r in rows:
        print(f"{r['series']:>8}{r['side']:>8}{r['windows']:>11}{r['prepare_s']:>11.1f}"
              f"{r['epoch_s']:>9.1f}{r['pipeline_wps']:>14,.0f}{r['train_wps']:>11,.0f}"
              f"{r['rss'] / 2**30:>9.2f}{r['rss'] / first:>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part", default="both",
        choices=["real", "scale", "both", "nf", "write", "nf-rnnflow", "stream",
                 "write-shards", "stream-one"],
        help="nf: rnnflow against NeuralForecast's LSTM (needs --nf-python)",
    )  # fmt: skip
    parser.add_argument("--mode", choices=sorted(NF_MODES), default="defaults",
                        help="nf part: both at their defaults, or the same model")
    parser.add_argument("--repeats", type=int, default=3, help="nf part: interleaved runs")
    parser.add_argument("--kind", default="gru", help="nf-rnnflow part")
    parser.add_argument("--folder", default=None, help="write part: where to")
    parser.add_argument(
        "--nf-python", default=None,
        help="python of an environment with neuralforecast (nf part)",
    )  # fmt: skip
    parser.add_argument("--kinds", default="gru,lstm,mlp")
    parser.add_argument("--epochs", type=int, default=None, help="real part")
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--train-epochs", type=int, default=2, help="scale part")
    parser.add_argument("--sizes", default="10000,50000,200000", help="stream part")
    parser.add_argument("--memory-max", type=int, default=10000,
                        help="stream part: largest panel the in-memory side runs")
    parser.add_argument("--side", choices=["stream", "memory"], default="stream")
    args = parser.parse_args()
    if args.part in ("real", "both"):
        real(args.kinds.split(","), args.epochs)
    if args.part in ("scale", "both"):
        scale(args.series, args.rows, args.train_epochs)
    if args.part == "write":
        write_panel(args.series, args.rows, Path(args.folder), NF_WINDOW["horizon"])
    if args.part == "nf-rnnflow":
        import json

        print(json.dumps(rnnflow_side(Path(args.folder), args.kind)))
    if args.part == "stream":
        sizes = [int(n) for n in args.sizes.split(",")]
        streamed_against_memory(sizes, args.rows, args.memory_max)
    if args.part == "write-shards":
        write_shards(args.series, args.rows, Path(args.folder))
    if args.part == "stream-one":
        import json

        print(json.dumps(stream_one(Path(args.folder), args.side)))
    if args.part == "nf":
        if not args.nf_python:
            sys.exit("--part nf needs --nf-python (an environment with neuralforecast)")
        versus_neuralforecast(args.series, args.rows, args.mode, args.repeats,
                              args.nf_python)  # fmt: skip


if __name__ == "__main__":
    main()
