"""Small-series training speed: the gas furnace course experiment three ways, in
one run, on the same windows.

The course setup: 296 rows of GR and CO2, the last 100 are the test set,
z-normalized with training statistics, windows of 10 rows predict the next row
of both columns: 186 training windows, batch 32, Adam, MSE, 200 epochs.

  1. PyTorch (if `torch` is importable): the course's style of training loop,
     a shuffled `DataLoader` and one optimizer step per batch. The course's own
     notebook is not shipped here; the modules mirror rnnflow's builders
     (MLP 64-32 relu, one LSTM or GRU layer of 32 units, a linear head) so the
     three trainers fit the same networks. torch is not a project dependency:
     `pip install torch` to include it.
  2. Plain Keras: the same rnnflow-built network, `model.fit` on NumPy windows.
  3. rnnflow: the same network through `training.fit_model` on the compiled loop
     (`train.loop: compiled`, what `auto` picks for data this size).
  4. rnnflow+skip: rnnflow's default model, the same network plus the linear
     skip (`model.skip: linear`, fitted by least squares before training;
     its time includes that fit).

Prints, per architecture: the median wall time of the training call and the
median test MSE (normalized units) over the seeds, and the ratios
rnnflow / PyTorch and rnnflow / Keras (below 1.0: rnnflow is faster). The
three trainers take turns seed by seed, so load on a shared machine falls on
all of them. rnnflow's first training of an architecture in the process
traces its compiled epoch and later ones reuse it, so its time for seed 0 is
printed too ("first training"): what a single `rnnflow train` pays.

    python bench/train_speed.py [--seeds 5] [--epochs 200] [--kinds mlp,lstm,gru]
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
from components.models import build_model  # noqa: E402
from components.models.skip import fit_linear_skip  # noqa: E402
from components.training.compiled_loop import materialize  # noqa: E402
from components.training.fit import compile_model, fit_model  # noqa: E402

WINDOW = WindowSpec(input_width=10, horizon=1)
UNITS = {"mlp": [64, 32], "lstm": [32], "gru": [32]}
LEARNING_RATE = {"mlp": 1e-3, "lstm": 1e-2, "gru": 1e-2}
BATCH = 32
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "gas_furnace.csv"


def load_rows() -> np.ndarray:
    """Gas furnace GR and CO2 as (296, 2) float32: ../shared, else the cache/URL."""
    import pandas as pd

    shared = Path(os.environ.get("RNNFLOW_SHARED_DIR", SHARED.parents[1]))
    path = shared / "data" / "gas_furnace.csv"
    if path.is_file():
        frame = pd.read_csv(path)
    else:
        from components.config.loading import load_experiment
        from components.data import ingest

        frame = ingest.load_series(load_experiment("gas_furnace").data).frame
    return frame[["GR", "CO2"]].to_numpy(np.float32)


def course_split(rows: np.ndarray):
    """Train on all but the last 100 rows; z-score both with train statistics."""
    train, test = rows[:-100], rows[-100:]
    mean, std = train.mean(0), train.std(0)
    return (train - mean) / std, (test - mean) / std


def test_mse(predict, test_rows) -> float:
    x, y = make_windows(test_rows, test_rows, WINDOW)
    return float(np.mean((predict(x) - y) ** 2))


def keras_model(kind: str, seed: int, spec: TrainSpec, skip: str = "none"):
    model = build_model(
        ModelSpec(kind=kind, units=UNITS[kind], skip=skip), (10, 2), (1, 2), seed=seed
    )
    return compile_model(model, spec)


def run_rnnflow(kind, seed, epochs, train_rows, test_rows, skip="none"):
    spec = TrainSpec(
        epochs=epochs, batch_size=BATCH, learning_rate=LEARNING_RATE[kind], patience=0
    )
    model = keras_model(kind, seed, spec, skip)
    data = materialize(train_rows, train_rows, WINDOW, shuffle=True, seed=seed)
    start = time.perf_counter()
    if skip != "none":  # what the train flow's build task does
        fit_linear_skip(model, *make_windows(train_rows, train_rows, WINDOW))
    fit_model(model, data, None, spec)
    seconds = time.perf_counter() - start
    return seconds, test_mse(lambda x: model.predict(x, verbose=0), test_rows)


def run_rnnflow_skip(kind, seed, epochs, train_rows, test_rows):
    """rnnflow's default: the same network plus the linear skip (`model.skip`)."""
    return run_rnnflow(kind, seed, epochs, train_rows, test_rows, skip="linear")


def run_keras(kind, seed, epochs, train_rows, test_rows):
    spec = TrainSpec(
        epochs=epochs, batch_size=BATCH, learning_rate=LEARNING_RATE[kind], patience=0
    )
    model = keras_model(kind, seed, spec)
    x, y = make_windows(train_rows, train_rows, WINDOW)
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    return seconds, test_mse(lambda x: model.predict(x, verbose=0), test_rows)


def run_torch(kind, seed, epochs, train_rows, test_rows):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Recurrent(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.rnn = cell(2, UNITS[kind][0], batch_first=True)
            self.head = nn.Linear(UNITS[kind][0], 2)

        def forward(self, x):  # (B, L, C) -> (B, 1, K)
            out, _ = self.rnn(x)
            return self.head(out[:, -1]).unsqueeze(1)

    if kind == "mlp":
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, 2), nn.Unflatten(1, (1, 2)),
        )  # fmt: skip
    else:
        model = Recurrent(nn.LSTM if kind == "lstm" else nn.GRU)
    x, y = make_windows(train_rows, train_rows, WINDOW)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=BATCH,
        shuffle=True,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE[kind])
    loss_fn = nn.MSELoss()
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()

    def predict(windows):
        with torch.no_grad():
            return model(torch.from_numpy(windows)).numpy()

    return seconds, test_mse(predict, test_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--kinds", default="mlp,lstm,gru")
    args = parser.parse_args()
    train_rows, test_rows = course_split(load_rows())
    trainers = {
        "rnnflow": run_rnnflow,
        "rnnflow+skip": run_rnnflow_skip,
        "keras_fit": run_keras,
    }
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        trainers["pytorch"] = run_torch
    except ImportError:
        print("torch is not importable: PyTorch column skipped (pip install torch)")
    print(
        f"gas furnace, {len(make_windows(train_rows, train_rows, WINDOW)[0])} training "
        f"windows, batch {BATCH}, {args.epochs} epochs, medians of {args.seeds} seeds"
    )
    header = f"{'model':6} {'trainer':12} {'seconds':>8} {'test_mse':>9}"
    print(header + "\n" + "-" * len(header))
    for kind in args.kinds.split(","):
        runs = {name: [] for name in trainers}
        for seed in range(args.seeds):  # trainers interleaved: load drifts
            for name, trainer in trainers.items():
                runs[name].append(trainer(kind, seed, args.epochs, train_rows, test_rows))
        medians = {}
        for name, results in runs.items():
            medians[name] = statistics.median(r[0] for r in results)
            mse = statistics.median(r[1] for r in results)
            print(f"{kind:6} {name:12} {medians[name]:8.2f} {mse:9.4f}", flush=True)
        # The first rnnflow training of an architecture in a process traces
        # its epoch; later ones (seeds, folds, a warm server) reuse the graph.
        for ours in ("rnnflow", "rnnflow+skip"):
            cold = runs[ours][0][0]
            for other in ("pytorch", "keras_fit"):
                if other in medians:
                    print(
                        f"{kind:6} ratio {ours}/{other}: "
                        f"{medians[ours] / medians[other]:.2f} (first training, "
                        f"{cold:.2f} s: {cold / medians[other]:.2f})"
                    )


if __name__ == "__main__":
    main()
