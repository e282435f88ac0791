"""Forecast quality on real series that ship inside PyPI packages (offline).

For each series: rnnflow's default experiment (conf/experiments/default.yaml:
GRU, its training settings) with only data, split, window and season given;
`compare` over the network kinds; the default kind again with each candidate
default setting (`VARIANTS`: window normalization, the shared linear skip); and
the baselines every run is scored against
(persistence, seasonal naive, linear AR, ETS, ARIMA). Numbers are on the test
split, in original units, plus MASE (scaled by the training rows' naive error).

    pip install -e ".[bench]"   # pmdarima (msft, taylor, airpassengers, wineind)
                                # and vega_datasets (Seattle weather, temperature)
    python bench/quality.py                         # every series, gru,lstm,mlp
    python bench/quality.py --series sunspots,msft --kinds gru --variants last

Prints one table per series as it finishes, then a summary: on how many series
the best network beats every baseline, and the worst ratio to persistence.
Results also go to --output (JSON) for bench/README.md.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASELINES = ("persistence", "seasonal_naive", "linear", "ets", "arima")


def _pmdarima(name: str) -> pd.DataFrame:
    import pmdarima.datasets as datasets

    return getattr(datasets, f"load_{name}")(as_series=True).to_frame("value")


def _elnino() -> pd.DataFrame:
    import statsmodels.api as sm

    wide = sm.datasets.elnino.load_pandas().data.set_index("YEAR")
    return pd.DataFrame({"sst": wide.to_numpy().reshape(-1)})  # monthly, in order


def _vega(name: str, columns: list[str], rows: int | None = None) -> pd.DataFrame:
    from vega_datasets import data

    frame = getattr(data, name)()[columns]
    return frame.tail(rows).reset_index(drop=True) if rows else frame


def _msft() -> pd.DataFrame:
    import pmdarima.datasets as datasets

    frame = datasets.load_msft()[["Date", "Close"]].tail(2500)  # last ~10 years
    return frame.reset_index(drop=True)


# name -> (what it is, frame loader or statsmodels path, experiment sections)
SERIES = {
    "sunspots": (
        "yearly sunspot numbers, 309 rows: cyclic (~11 y), noisy",
        "statsmodels:sunspots",
        {
            "data": {"targets": ["SUNACTIVITY"], "features": ["SUNACTIVITY"]},
            "split": {"test": 50, "val": 40},
            "window": {"input_width": 20, "horizon": 1},
            "evaluate": {"season": 11},
        },
    ),
    "co2": (
        "weekly CO2 at Mauna Loa, 2,284 rows: trend + season (52)",
        "statsmodels:co2",
        {
            "data": {"missing": "interpolate"},
            "split": {"test": 0.2, "val": 0.1},
            "window": {"input_width": 52, "horizon": 4},
            "evaluate": {"season": 52},
        },
    ),
    "macro": (
        "quarterly US GDP, consumption, investment, 203 rows: multivariate, "
        "log-differenced",
        "statsmodels:macrodata",
        {
            "data": {
                "targets": ["realgdp", "realcons", "realinv"],
                "features": ["realgdp", "realcons", "realinv"],
                "transform": "log_diff",
            },
            "split": {"test": 40, "val": 30},
            "window": {"input_width": 8, "horizon": 1},
            "evaluate": {"season": 4},
        },
    ),
    "elnino": (
        "monthly Pacific sea surface temperature, 732 rows: season (12), "
        "6 months ahead",
        _elnino,
        {
            "split": {"test": 0.2, "val": 0.15},
            "window": {"input_width": 24, "horizon": 6},
            "evaluate": {"season": 12},
        },
    ),
    "msft": (
        "daily Microsoft closing price, last 2,500 days: drifts out of its "
        "training range",
        _msft,
        {
            "data": {"targets": ["Close"], "features": ["Close"]},
            "split": {"test": 0.2, "val": 0.1},
            "window": {"input_width": 30, "horizon": 1},
        },
    ),
    "taylor": (
        "half-hourly electricity demand, 4,032 rows: daily season (48), "
        "long horizon (48 in, 48 out)",
        lambda: _pmdarima("taylor"),
        {
            "split": {"test": 0.2, "val": 0.1},
            "window": {"input_width": 48, "horizon": 48},
            "evaluate": {"season": 48},
        },
    ),
    "seattle_weather": (
        "daily Seattle weather, 1,461 rows x 4 columns (rain, max/min "
        "temperature, wind): multivariate, 56 days in, 28 out",
        lambda: _vega(
            "seattle_weather", ["precipitation", "temp_max", "temp_min", "wind"]
        ),
        {
            "split": {"test": 0.2, "val": 0.15},
            "window": {"input_width": 56, "horizon": 28},
        },
    ),
    "seattle_temps": (
        "hourly Seattle temperature, last 3,000 hours of 2010: daily season (24)",
        lambda: _vega("seattle_temps", ["temp"], rows=3000),
        {
            "split": {"test": 0.2, "val": 0.1},
            "window": {"input_width": 48, "horizon": 24},
            "evaluate": {"season": 24},
        },
    ),
    "airpassengers": (
        "monthly airline passengers, 144 rows: trend + multiplicative season",
        lambda: _pmdarima("airpassengers"),
        {
            "split": {"test": 36, "val": 24},
            "window": {"input_width": 12, "horizon": 6},
            "evaluate": {"season": 12},
        },
    ),
    "wineind": (
        "monthly Australian wine sales, 176 rows: noisy season (12)",
        lambda: _pmdarima("wineind"),
        {
            "split": {"test": 36, "val": 30},
            "window": {"input_width": 24, "horizon": 1},
            "evaluate": {"season": 12},
        },
    ),
}


def experiment(name: str, folder: Path, uri: str, epochs: int | None) -> Path:
    """The default experiment with this series' data, split, window, season."""
    _, source, sections = SERIES[name]
    default = yaml.safe_load((ROOT / "conf/experiments/default.yaml").read_text())
    data = dict(sections.get("data", {}))
    if callable(source):
        frame = source()
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
        data["path"] = str(path)
        if "Date" in frame.columns:
            data["time_column"] = "Date"
    else:
        data["path"] = source
    train = dict(default["train"])
    if epochs:
        train["epochs"] = epochs
    raw = {
        "name": f"quality_{name}",
        "defaults": {"model": default["defaults"]["model"]},
        **{k: v for k, v in sections.items() if k != "data"},
        "data": data,
        "train": train,
        "tracking": {"uri": uri, "experiment": f"quality-{name}"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# The default kind again with one setting changed: the candidates for defaults.
VARIANTS = {
    "last": ["model.window_norm=last"],
    "revin": ["model.window_norm=revin"],
    "shared": ["model.skip=shared"],
    "last+shared": ["model.window_norm=last", "model.skip=shared"],
    "auto": ["model.window_norm=auto", "model.skip=auto"],
}


def run_series(name, folder, uri, kinds, variants, epochs) -> dict:
    """Every network and baseline on one series: rows of test metrics."""
    from mlflow import MlflowClient

    from components.config.loading import load_experiment
    from flows.compare import compare_flow
    from flows.train import train_flow

    path = experiment(name, folder, uri, epochs)
    config = load_experiment(path)
    rows, start = {}, time.perf_counter()
    result = compare_flow(config, kinds, seeds=1)
    for row in result.leaderboard:
        rows[row["model"]] = {
            "mse_raw": row["test_mse_raw_mean"],
            "mae_raw": row["test_mae_raw_mean"],
            "mase": row["test_mase_mean"],
            "kind": row["kind"],
            "seconds": row.get("train_seconds_mean"),
        }
    run_id = next(r["run_ids"][0] for r in result.leaderboard if r["run_ids"])
    child = MlflowClient(uri).get_run(run_id)  # baseline fit times
    for b in ("ets", "arima"):
        if b in rows:
            rows[b]["seconds"] = child.data.metrics.get(f"baseline_{b}_seconds")
    for variant in variants:
        trained = train_flow(load_experiment(path, VARIANTS[variant]))
        m = trained.metrics
        rows[f"{config.model.kind}+{variant}"] = {
            "mse_raw": m["test_mse_raw"],
            "mae_raw": m["test_mae_raw"],
            "mase": m["test_mase"],
            "kind": "model",
            "seconds": m["train_seconds"],
            "warnings": trained.warnings,
        }
    warnings = result.warnings
    return {
        "series": name,
        "about": SERIES[name][0],
        "default": config.model.kind,
        "rows": rows,
        "warnings": warnings,
        "wall_seconds": time.perf_counter() - start,
    }


def table(result: dict) -> str:
    rows = result["rows"]
    persistence = rows["persistence"]["mse_raw"]
    lines = [
        f"## {result['series']}: {result['about']}",
        "",
        "| model | test mse (raw) | mae (raw) | MASE | mse / persistence | fit s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in sorted(rows.items(), key=lambda kv: kv[1]["mse_raw"]):
        seconds = "" if r.get("seconds") is None else f"{r['seconds']:.1f}"
        name = label if r["kind"] == "model" else f"_{label}_"
        lines.append(
            f"| {name} | {r['mse_raw']:.5g} | {r['mae_raw']:.5g} | {r['mase']:.3f} "
            f"| {r['mse_raw'] / persistence:.3f} | {seconds} |"
        )
    for kind, message in result["warnings"].items():
        lines.append(f"\n! {message}")
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    """Wins of the best network over every baseline, and the worst ratios."""
    wins, ratios, lines = 0, [], []
    for result in results:
        rows = result["rows"]
        nets = {k: v for k, v in rows.items() if v["kind"] == "model"}
        default = result["default"]
        best = min(nets, key=lambda k: nets[k]["mse_raw"])
        base = min((k for k in rows if k in BASELINES), key=lambda k: rows[k]["mse_raw"])
        won = nets[best]["mse_raw"] < rows[base]["mse_raw"]
        wins += won
        ratio = nets[default]["mse_raw"] / rows["persistence"]["mse_raw"]
        ratios.append((ratio, result["series"]))
        lines.append(
            f"- {result['series']}: best network {best} {nets[best]['mse_raw']:.5g}, "
            f"best baseline {base} {rows[base]['mse_raw']:.5g} "
            f"({'network wins' if won else 'baseline wins'}); default {default} / "
            f"persistence {ratio:.3f}"
        )
    worst = max(ratios)
    lines.insert(
        0,
        f"best network beats every baseline on {wins} of {len(results)} series; "
        f"worst ratio of the default network to persistence: {worst[0]:.3f} "
        f"({worst[1]})",
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default=",".join(SERIES))
    parser.add_argument("--kinds", default="gru,lstm,mlp")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--output", default=str(ROOT / "bench/quality.json"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rnnflow-quality-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    results = []
    for name in args.series.split(","):
        result = run_series(
            name, folder, uri, args.kinds.split(","), args.variants.split(","),
            args.epochs,
        )
        results.append(result)
        print(table(result), flush=True)
        Path(args.output).write_text(json.dumps(results, indent=1, default=float))
    print("\n" + summary(results))


if __name__ == "__main__":
    main()
