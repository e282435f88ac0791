"""Series a panel model never trained on: does the global network, scaled by
each new series' own rows, beat naive on them? Measured against the same
network on the series it trained on, in the same run.

The World Bank fertility panel (statsmodels): every 7th country (sorted) is
held out of the training file; one `rnnflow train` on the rest (the fertility
experiment's settings, `train.epochs` as given). Then every country is cut 3
years before its end and forecast from the rows before that cut (the last
`--context` years for the held-out ones, all of them for the others) by the
logged forecaster: held-out countries go through the own-statistics path,
trained ones through their training statistics. Scored: MAE over the 3 years
against naive (the last value) on the same cut, per group.

    python bench/unseen_series.py [--epochs 100] [--context 12] [KEY=VALUE ...]

With `model.window_norm` (what `auto` picks here: revin) each window is scaled
by its own level inside the network, so a new series' outer statistics cancel
out; `model.window_norm=none` shows the own-statistics path doing the work.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from components.config.schema import DataSpec  # noqa: E402
from components.data.ingest import read_raw  # noqa: E402
from components.tracking.packaging import load_forecaster  # noqa: E402

HORIZON = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--context", type=int, default=12)
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE for the training")
    args = parser.parse_args()
    raw = read_raw(DataSpec(path="statsmodels:fertility")).dropna(subset=["fertility"])
    raw = raw[["country", "year", "fertility"]]
    countries = sorted(raw["country"].unique())
    held = set(countries[::7])
    work = Path(tempfile.mkdtemp())
    raw[~raw["country"].isin(held)].to_csv(work / "train.csv", index=False)
    uri = f"sqlite:///{work}/mlflow.db"
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--local", "train", "fertility",
         f"data.path={work / 'train.csv'}", f"train.epochs={args.epochs}",
         f"tracking.uri={uri}", *args.overrides, "--json"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    run_id = __import__("json").loads(done.stdout.strip().splitlines()[-1])["run_id"]
    forecaster = load_forecaster(f"runs:/{run_id}/forecaster", uri)
    history, actual = [], []
    for country, rows in raw.groupby("country"):
        rows = rows.sort_values("year")
        if len(rows) < HORIZON + 2:
            continue
        past, future = rows.iloc[:-HORIZON], rows.iloc[-HORIZON:]
        history.append(past.tail(args.context) if country in held else past)
        actual.append(future.assign(step=np.arange(1, HORIZON + 1)))
    forecast = forecaster.forecast(pd.concat(history))
    truth = pd.concat(actual).rename(columns={"country": "series", "fertility": "y"})
    last = pd.concat(history).groupby("country")["fertility"].last()
    scored = forecast.merge(truth[["series", "step", "y"]], on=["series", "step"])
    scored["naive"] = scored["series"].map(last)
    scored["held_out"] = scored["series"].isin(held)
    print(f"run {run_id}: {len(held)} countries held out of training, "
          f"{scored['series'].nunique()} scored, horizon {HORIZON}")  # fmt: skip
    print(f"{'group':<34}{'series':>7}{'MAE model':>11}{'MAE naive':>11}{'ratio':>8}")
    for name, group in (("trained on", scored[~scored["held_out"]]),
                        ("held out (own statistics)", scored[scored["held_out"]])):  # fmt: skip
        by = group.groupby("forecaster")
        for who, part in by:
            model = np.abs(part["fertility"] - part["y"]).mean()
            naive = np.abs(part["naive"] - part["y"]).mean()
            label = f"{name}, {who}"
            print(f"{label:<34}{part['series'].nunique():>7}{model:>11.4f}"
                  f"{naive:>11.4f}{model / naive:>8.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
