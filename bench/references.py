"""What the classical references cost against series length, beside the network
they are a reference for, measured in the same run.

A default `rnnflow train` scores ETS and ARIMA on the validation and test
splits of every series (`components/evaluation/classical.py`). Their
parameters come from the last `MAX_FIT_ROWS` training rows (ARIMA's order
from the last `SELECT_ROWS`), and every window's forecast comes from one
filter pass, so their cost should stay flat as the series grows while the
network's grows with it. This prints, per length: the seconds of ETS and of
ARIMA (test split, one fit per column, cache cleared) and of 20 epochs of the
default network (GRU [32] + linear skip, input 20, horizon 1, batch 32, the
compiled loop) on the same training rows, and each reference's share of that;
"(before)" is ARIMA as it was until 2026-12-05, every candidate order fitted
on all `MAX_FIT_ROWS` rows, measured in the same run.

The series: two columns, a daily and a weekly cycle on hourly rows plus an
AR(1) and a random walk (what a sensor or load table looks like), so every
length has the same structure. Lengths take turns within each repeat.

    python bench/references.py [--lengths 1000,5000,20000,100000] [--repeats 2]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from components.config.schema import ModelSpec, TrainSpec, WindowSpec  # noqa: E402
from components.data.windowing import make_windows  # noqa: E402
from components.evaluation import classical  # noqa: E402
from components.models import build_model  # noqa: E402
from components.models.skip import fit_linear_skip  # noqa: E402
from components.training.compiled_loop import materialize  # noqa: E402
from components.training.fit import compile_model, fit_model  # noqa: E402

WINDOW = WindowSpec(input_width=20, horizon=1)
EPOCHS = 20


def make_rows(n: int, seed: int = 0) -> np.ndarray:
    """(n, 2): daily and weekly cycles on hourly rows, AR(1) noise, a walk."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ar = np.zeros(n)
    shocks = rng.standard_normal(n)
    for i in range(1, n):
        ar[i] = 0.7 * ar[i - 1] + shocks[i]
    cycles = 10 * np.sin(2 * np.pi * t / 24) + 3 * np.sin(2 * np.pi * t / 168)
    walk = np.cumsum(0.2 * rng.standard_normal(n))
    return np.stack([50 + cycles + ar, 20 + 0.5 * cycles + walk], axis=1)


def splits(rows: np.ndarray):
    """70 / 15 / 15, z-scored with the training rows (what the flow does)."""
    n = len(rows)
    train, val, test = np.split(rows, [int(0.7 * n), int(0.85 * n)])
    mean, std = train.mean(0), train.std(0)
    return train, val, test, (train - mean) / std


def reference_seconds(name: str, train, val, test, select_rows=None) -> float:
    """`select_rows`: ARIMA's order chosen on this many rows (default the
    shipped `SELECT_ROWS`; `MAX_FIT_ROWS` is how it was before: every
    candidate fitted on every fitted row)."""
    classical._cache.clear()
    shipped = classical.SELECT_ROWS
    classical.SELECT_ROWS = select_rows or shipped
    try:
        start = time.perf_counter()
        classical.forecast_windows(name, train, test, WINDOW, None, val)
        return time.perf_counter() - start
    finally:
        classical.SELECT_ROWS = shipped


def network_seconds(scaled_train: np.ndarray) -> float:
    spec = TrainSpec(epochs=EPOCHS, batch_size=32, learning_rate=3e-3, patience=0)
    model = build_model(
        ModelSpec(kind="gru", units=[32], skip="linear"), (20, 2), (1, 2), seed=0
    )
    model = compile_model(model, spec)
    data = materialize(scaled_train, scaled_train, WINDOW, shuffle=True, seed=0)
    start = time.perf_counter()
    fit_linear_skip(model, *make_windows(scaled_train, scaled_train, WINDOW))
    fit_model(model, data, None, spec)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1000,5000,20000,100000")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    found = {n: {"ets": [], "arima": [], "arima_all": [], "network": []} for n in lengths}
    network_seconds(splits(make_rows(500))[3])  # trace the compiled epoch once
    for _ in range(args.repeats):
        for n in lengths:
            train, val, test, scaled = splits(make_rows(n))
            found[n]["ets"].append(reference_seconds("ets", train, val, test))
            found[n]["arima"].append(reference_seconds("arima", train, val, test))
            found[n]["arima_all"].append(
                reference_seconds("arima", train, val, test, classical.MAX_FIT_ROWS)
            )
            found[n]["network"].append(network_seconds(scaled))
    print(f"{'rows':>8}{'ETS s':>9}{'ARIMA s':>9}{'(before) s':>12}"
          f"{f'net {EPOCHS} ep s':>14}{'ETS/net':>9}{'ARIMA/net':>10}"
          f"{'(before)/net':>14}")  # fmt: skip
    for n in lengths:
        ets, arima, before, net = (statistics.median(found[n][k]) for k in found[n])
        print(f"{n:>8}{ets:>9.2f}{arima:>9.2f}{before:>12.2f}{net:>14.2f}"
              f"{ets / net:>9.2f}{arima / net:>10.2f}{before / net:>14.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
