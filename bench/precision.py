"""float32 vs mixed precision: training samples/s of every architecture of the zoo.

The models are rnnflow's own (`components.models.build_model`), built once under
`float32` and once under the mixed policy (`mixed_float16` on a GPU,
`mixed_bfloat16` on a CPU unless `--policy` says otherwise), the way
`train.precision` builds them: heads stay float32, `compile` adds loss scaling
for float16. Each pair is timed in the same process on the same data with
`model.fit` on NumPy windows (after a warm-up epoch), so it runs on whatever
Keras backend is configured: TensorFlow here, or `KERAS_BACKEND=jax` where only
JAX is installed (the lent GPU machines: a TensorFlow wheel does not travel
there). Ratios above 1.0: mixed precision is faster.

    python bench/precision.py [--kinds lstm,gru] [--batch 256] [--policy mixed_float16]

Also reports the final training loss of each side, so a policy that trains
faster but diverges shows up here.
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

from components.config.schema import ModelSpec  # noqa: E402
from components.models import build_model, model_kinds  # noqa: E402


def has_gpu() -> bool:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    import torch

    return torch.cuda.is_available()


def data(windows: int, width: int, features: int, seed: int = 0):
    """A noisy multi-sine series cut into windows: learnable, not constant."""
    rng = np.random.default_rng(seed)
    t = np.arange(windows + width + 1, dtype=np.float32)[:, None]
    freqs = rng.uniform(0.01, 0.2, size=(1, features)).astype(np.float32)
    series = np.sin(t * freqs) + 0.1 * rng.standard_normal((len(t), features)).astype(
        np.float32
    )
    starts = np.arange(windows)
    x = series[starts[:, None] + np.arange(width)]
    y = series[starts + width][:, None, :]
    return x.astype(np.float32), y.astype(np.float32)


def samples_per_second(kind, policy, x, y, args) -> tuple[float, float]:
    keras.config.set_dtype_policy(policy)
    try:
        spec = ModelSpec(kind=kind, units=[args.units] * args.layers, skip="none")
        model = build_model(spec, x.shape[1:], y.shape[1:], seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    finally:
        keras.config.set_dtype_policy("float32")
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)  # compile, warm up
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - start
    return len(x) * args.epochs / seconds, history.history["loss"][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(model_kinds()))
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--policy", default=None, help="default: by device")
    args = parser.parse_args()

    gpu = has_gpu()
    mixed = args.policy or ("mixed_float16" if gpu else "mixed_bfloat16")
    x, y = data(args.windows, args.width, args.features)
    print(
        f"backend {keras.backend.backend()}, {'GPU' if gpu else 'CPU'}, "
        f"{args.windows} windows of {args.width} x {args.features}, "
        f"{args.layers} x {args.units} units, batch {args.batch}, "
        f"{args.epochs} timed epochs, {args.repeats} alternating repeats"
    )
    print(
        f"{'kind':<14}{'float32 /s':>12}{mixed + ' /s':>22}{'ratio':>8}"
        f"{'loss f32':>10}{'loss mixed':>12}"
    )
    for kind in args.kinds.split(","):
        runs = {"float32": [], mixed: []}
        try:
            for _ in range(args.repeats):
                for policy in runs:
                    runs[policy].append(samples_per_second(kind, policy, x, y, args))
        except Exception as error:  # one backend/kind gap must not hide the rest
            print(f"{kind:<14}{policy} failed: {type(error).__name__}: {error}")
            continue
        full = statistics.median(r[0] for r in runs["float32"])
        half = statistics.median(r[0] for r in runs[mixed])
        print(
            f"{kind:<14}{full:>12,.0f}{half:>22,.0f}{half / full:>8.2f}"
            f"{runs['float32'][-1][1]:>10.4f}{runs[mixed][-1][1]:>12.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
