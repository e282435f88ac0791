"""Training throughput of every architecture: rnnflow vs plain Keras vs PyTorch.

Same stack (2 layers of 64 units), same data (20,000 windows of 24 x 8, horizon 1,
8 targets), batch 256, float32, in the same process:
  - rnnflow: `fit_model` with the loop `train.loop: auto` picks here (the
    compiled loop: the windows take 15 MiB), or `--loop fit` for its streamed
    tf.data pipeline + `model.fit`;
  - plain Keras: the stack written as a short Keras script, `model.fit` on
    NumPy windows;
  - PyTorch (when `torch` is importable; not a project dependency): the same
    stack as `nn` modules, a shuffled `DataLoader`, one Adam step per batch.
Each side gets a warm-up epoch, then `--epochs` timed epochs; the sides
alternate `--repeats` times; medians of samples/s and of the per-repeat ratios
(with their range) are printed. On shared 2-core machines single repeats vary
by +-30 %: read the range, not one number.

    python bench/throughput.py [--kinds lstm,gru] [--epochs 2] [--repeats 2] [--loop fit]

Ratios above 1.0: rnnflow is faster.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from components.config.schema import ModelSpec, TrainSpec, WindowSpec  # noqa: E402
from components.data.windowing import make_dataset, make_windows  # noqa: E402
from components.models import build_model, model_kinds  # noqa: E402
from components.training.compiled_loop import materialize  # noqa: E402
from components.training.fit import compile_model, fit_model  # noqa: E402

WINDOWS, WIDTH, FEATURES, BATCH, UNITS = 20_000, 24, 8, 256, [64, 64]


def plain_keras_model(kind: str) -> keras.Model:
    """The same stack written the way a short Keras script would."""
    layer = {
        "simple_rnn": keras.layers.SimpleRNN,
        "lstm": keras.layers.LSTM,
        "gru": keras.layers.GRU,
    }
    inputs = keras.Input((WIDTH, FEATURES))
    if kind == "mlp":
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(64, activation="relu")(x)
        x = keras.layers.Dense(64, activation="relu")(x)
    elif kind == "bidirectional":
        x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(
            inputs
        )
        x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    elif kind == "seq2seq":
        x = keras.layers.LSTM(64, return_sequences=True)(inputs)
        x, h, c = keras.layers.LSTM(64, return_sequences=True, return_state=True)(x)
        steps = keras.layers.RepeatVector(1)(h)
        x = keras.layers.LSTM(64, return_sequences=True)(steps, initial_state=[h, c])
        return keras.Model(inputs, keras.layers.Dense(FEATURES)(x))
    else:
        x = layer[kind](64, return_sequences=True)(inputs)
        x = layer[kind](64)(x)
    x = keras.layers.Dense(FEATURES)(x)
    return keras.Model(inputs, keras.layers.Reshape((1, FEATURES))(x))


def time_plain(kind, rows, epochs) -> float:
    x, y = make_windows(rows, rows, WindowSpec(input_width=WIDTH, horizon=1))
    keras.utils.set_random_seed(0)
    model = plain_keras_model(kind)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    return WINDOWS * epochs / (time.perf_counter() - start)


def time_rnnflow(kind, rows, epochs, loop="compiled") -> float:
    window = WindowSpec(input_width=WIDTH, horizon=1)
    if loop == "compiled":
        data = materialize(rows, rows, window, shuffle=True, seed=0)
    else:
        data = make_dataset(rows, rows, window, BATCH, shuffle=True, seed=0)
    keras.utils.set_random_seed(0)
    spec = TrainSpec(epochs=1, batch_size=BATCH, patience=0, precision="float32")
    model = build_model(
        ModelSpec(kind=kind, units=UNITS, skip="none"),
        (WIDTH, FEATURES),
        (1, FEATURES),
        seed=0,
    )
    compile_model(model, spec)
    fit_model(model, data, None, spec)  # warm-up
    result = fit_model(model, data, None, spec.model_copy(update={"epochs": epochs}))
    return WINDOWS * epochs / result.seconds


def torch_model(kind: str):
    """The same stack in PyTorch: (B, L, C) -> (B, 1, C)."""
    from torch import nn

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            if kind == "mlp":
                self.body = nn.Sequential(
                    nn.Flatten(), nn.Linear(WIDTH * FEATURES, 64), nn.ReLU(),
                    nn.Linear(64, 64), nn.ReLU(),
                )  # fmt: skip
                width = 64
            else:
                cell = {"simple_rnn": nn.RNN, "gru": nn.GRU}.get(kind, nn.LSTM)
                both = kind == "bidirectional"
                self.body = cell(FEATURES, 64, 2, batch_first=True, bidirectional=both)
                width = 128 if both else 64
            if kind == "seq2seq":
                self.decoder = nn.LSTM(64, 64, batch_first=True)
            self.head = nn.Linear(width, FEATURES)

        def forward(self, x):
            if kind == "mlp":
                return self.head(self.body(x)).unsqueeze(1)
            out, state = self.body(x)
            if kind == "seq2seq":  # one decoder step from the encoder's last state
                h, c = state
                out, _ = self.decoder(out[:, -1:], (h[-1:], c[-1:]))
            return self.head(out[:, -1]).unsqueeze(1)

    return Stack()


def time_torch(kind, rows, epochs) -> float:
    import torch

    torch.manual_seed(0)
    x, y = make_windows(rows, rows, WindowSpec(input_width=WIDTH, horizon=1))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=BATCH,
        shuffle=True,
    )
    model = torch_model(kind)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()

    def epoch():
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()

    epoch()  # warm-up
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return WINDOWS * epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default=",".join(model_kinds()))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--loop", choices=["compiled", "fit"], default="compiled")
    args = parser.parse_args()
    sides = {
        "rnnflow": lambda kind: time_rnnflow(kind, rows, args.epochs, args.loop),
        "keras": lambda kind: time_plain(kind, rows, args.epochs),
    }
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        sides["pytorch"] = lambda kind: time_torch(kind, rows, args.epochs)
    except ImportError:
        print("torch is not importable: PyTorch column skipped (pip install torch)")
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((WINDOWS + WIDTH, FEATURES)).astype("float32")
    print(
        f"{WINDOWS} windows of {WIDTH}x{FEATURES}, batch {BATCH}, units {UNITS}, "
        f"float32, {os.cpu_count()} CPUs, keras {keras.__version__}"
    )
    others = [name for name in sides if name != "rnnflow"]
    print(
        f"{'kind':<14}" + "".join(f"{name + '/s':>12}" for name in sides)
        + "".join(f"{'vs ' + name:>18}" for name in others)
        + f"   (rnnflow loop: {args.loop})"
    )  # fmt: skip
    for kind in args.kinds.split(","):
        rates = {name: [] for name in sides}
        for _ in range(args.repeats):  # alternate so machine load hits every side
            for name, timed in sides.items():
                rates[name].append(timed(kind))
        line = f"{kind:<14}" + "".join(
            f"{statistics.median(rates[name]):>12,.0f}" for name in sides
        )
        for name in others:
            ratios = [a / b for a, b in zip(rates["rnnflow"], rates[name], strict=True)]
            line += f"{statistics.median(ratios):>7.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
