"""Training throughput of every architecture: rnnflow's path vs plain Keras.

Same stack (2 layers of 64 units), same data (20,000 windows of 24 x 8, horizon 1,
8 targets), batch 256, float32, in the same process. rnnflow's path streams
windows from the rows through its tf.data pipeline and trains with `fit_model`;
the plain-Keras reference materializes the windows as NumPy arrays and calls
`model.fit`. Each side gets a warm-up epoch, then `--epochs` timed epochs; the
two sides alternate `--repeats` times; the median samples/s of each side and
the median (and range) of the per-pair ratios are reported. On shared 2-core
machines single pairs vary by +-30 %: read the range, not one number.

    python bench/models.py [--kinds lstm,gru] [--epochs 2] [--repeats 2]

Prints samples/s per kind and the ratio rnnflow / plain Keras (>= 0.95 means
rnnflow adds no training tax).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from components.config import ModelSpec, TrainSpec, WindowSpec  # noqa: E402
from components.models import build_model, model_kinds  # noqa: E402
from components.training import compile_model, fit_model  # noqa: E402
from components.windowing import make_dataset, make_windows  # noqa: E402

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


def time_rnnflow(kind, rows, epochs) -> float:
    window = WindowSpec(input_width=WIDTH, horizon=1)
    data = make_dataset(rows, rows, window, BATCH, shuffle=True, seed=0)
    keras.utils.set_random_seed(0)
    spec = TrainSpec(epochs=1, batch_size=BATCH, patience=0, precision="float32")
    model = build_model(
        ModelSpec(kind=kind, units=UNITS), (WIDTH, FEATURES), (1, FEATURES), seed=0
    )
    compile_model(model, spec)
    fit_model(model, data, None, spec)  # warm-up
    result = fit_model(model, data, None, spec.model_copy(update={"epochs": epochs}))
    return WINDOWS * epochs / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default=",".join(model_kinds()))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((WINDOWS + WIDTH, FEATURES)).astype("float32")
    print(
        f"{WINDOWS} windows of {WIDTH}x{FEATURES}, batch {BATCH}, units {UNITS}, "
        f"float32, {os.cpu_count()} CPUs, keras {keras.__version__}"
    )
    print(f"{'kind':<14}{'rnnflow/s':>12}{'keras/s':>12}{'ratio':>8}  ratio range")
    for kind in args.kinds.split(","):
        ours, theirs = [], []
        for _ in range(args.repeats):  # alternate so machine load hits both sides
            ours.append(time_rnnflow(kind, rows, args.epochs))
            theirs.append(time_plain(kind, rows, args.epochs))
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        a, b = statistics.median(ours), statistics.median(theirs)
        print(
            f"{kind:<14}{a:>12,.0f}{b:>12,.0f}{statistics.median(ratios):>8.2f}  "
            f"{min(ratios):.2f}-{max(ratios):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
