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

    python bench/panel.py                       # both parts, defaults
    python bench/panel.py --part scale --series 10000 --rows 1000
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
    from components.config import load_experiment
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
        m = result["metrics"]
        rows[kind] = _row(m, "test_", m["train_seconds"])
        report = report or (config, result["evaluation"])
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

    from components import evaluation as scoring
    from components import ingest, panel_metrics

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
    from components.panel import time_cut

    return time_cut(series.frame.index, config.split).val_from


def scale(n_series: int, n_rows: int, epochs: int) -> None:
    from components import ingest, preprocess
    from components.config import DataSpec, SplitSpec, WindowSpec
    from components.windowing import make_dataset, window_starts

    rng = np.random.default_rng(0)
    stamps = {}

    def stage(name, start):
        stamps[name] = time.perf_counter() - start

    start = time.perf_counter()
    phi = rng.uniform(-0.9, 0.95, n_series)[:, None]
    noise = rng.normal(size=(n_series, n_rows)).astype(np.float32)
    values = np.zeros_like(noise)
    for t in range(1, n_rows):
        values[:, t] = phi[:, 0] * values[:, t - 1] + noise[:, t]
    values = values * rng.uniform(1, 100, (n_series, 1)) + rng.uniform(-50, 50, (n_series, 1))
    frame = pd.DataFrame(
        {
            "id": np.repeat([f"s{i:05d}" for i in range(n_series)], n_rows),
            "t": np.tile(np.arange(n_rows), n_series),
            "y": values.ravel().astype(np.float64),
        }
    )
    stage("make the long frame", start)
    row_bytes = n_series * n_rows * 4  # the values alone, float32
    spec = DataSpec(path="synthetic", id_column="id", time_column="t", targets=["y"])
    window = WindowSpec(input_width=24, horizon=6)
    start = time.perf_counter()
    series = ingest.series_from_frame(frame, spec, "synthetic")
    stage("ingest (sort, check keys)", start)
    start = time.perf_counter()
    found = preprocess.split_panel(
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


def _train_gru(dataset, window, epochs: int) -> float:
    from components import seeds, training
    from components.config import ModelSpec, TrainSpec
    from components.models import build_model

    seeds.seed_everything(0)
    model = build_model(
        ModelSpec(kind="gru", units=[32], skip="none"),
        (window.input_width, 1), (window.horizon, 1), 0,
    )  # fmt: skip
    training.compile_model(model, TrainSpec(learning_rate=0.003))
    model.fit(dataset.take(2), epochs=1, verbose=0)  # trace outside the clock
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["real", "scale", "both"], default="both")
    parser.add_argument("--kinds", default="gru,lstm,mlp")
    parser.add_argument("--epochs", type=int, default=None, help="real part")
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--train-epochs", type=int, default=2, help="scale part")
    args = parser.parse_args()
    if args.part in ("real", "both"):
        real(args.kinds.split(","), args.epochs)
    if args.part in ("scale", "both"):
        scale(args.series, args.rows, args.train_epochs)


if __name__ == "__main__":
    main()
