"""Windowing speed and memory: rnnflow's `make_dataset` vs Keras'
`timeseries_dataset_from_array`, on the same series, in the same run.

Series: 1,000,000 rows x 8 float32 features, windows of 168, stride 1, horizon 1,
batch 256, shuffled. rnnflow streams a full epoch; Keras' utility is timed on
its first `--keras-batches` batches (a full epoch takes over a minute at its
speed), and windows/s is what is compared. Both are drained inside the graph
(`Dataset.reduce`), as a training step reads them. Each side runs in its own
subprocess so its peak RSS is its own (it includes TensorFlow, about 0.8 GB).

    python bench/windowing.py [--rows 1000000] [--width 168] [--keras-batches 200]

Prints windows/s, peak RSS and the ratio (the goal is >= 30x with bounded memory).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

BATCH, FEATURES = 256, 8


def _series(rows: int):
    import numpy as np

    return np.random.default_rng(0).standard_normal((rows, FEATURES)).astype("float32")


def run_rnnflow(rows: int, width: int, batches: int | None) -> dict:
    from components.config.schema import WindowSpec
    from components.data.windowing import make_dataset

    data = _series(rows)
    dataset = make_dataset(
        data, data, WindowSpec(input_width=width), BATCH, shuffle=True, seed=0
    )
    return _consume(dataset, batches)


def run_keras(rows: int, width: int, batches: int | None) -> dict:
    import keras

    data = _series(rows)
    dataset = keras.utils.timeseries_dataset_from_array(
        data[:-1],
        data[width:],
        sequence_length=width,
        batch_size=BATCH,
        shuffle=True,
        seed=0,
    )
    return _consume(dataset, batches)


def _consume(dataset, batches: int | None) -> dict:
    """Drain the dataset inside the graph, as a training step reads it (a Python
    loop over batches would measure Python, not the pipeline)."""
    import tensorflow as tf

    if batches:
        dataset = dataset.take(batches)
    shape = [int(d) for d in next(iter(dataset))[0].shape]
    start = time.perf_counter()
    windows = int(
        dataset.reduce(
            tf.constant(0, tf.int64),
            lambda n, b: n + tf.shape(b[0], out_type=tf.int64)[0],
        )
    )
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "windows": windows,
        "seconds": seconds,
        "per_second": windows / seconds,
        "peak_rss_mb": peak_mb,
        "shape": shape,
    }


def _child(side: str, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        side,
        "--rows",
        str(args.rows),
        "--width",
        str(args.width),
        "--keras-batches",
        str(args.keras_batches),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=168)
    parser.add_argument("--keras-batches", type=int, default=200)
    parser.add_argument("--child", choices=["rnnflow", "keras"])
    args = parser.parse_args()
    if args.child:
        runner = run_rnnflow if args.child == "rnnflow" else run_keras
        batches = args.keras_batches if args.child == "keras" else None
        print(json.dumps(runner(args.rows, args.width, batches)))
        return
    ours, theirs = _child("rnnflow", args), _child("keras", args)
    print(
        f"{args.rows:,} rows x {FEATURES}, width {args.width}, batch {BATCH}, "
        f"{os.cpu_count()} CPUs"
    )
    for name, r in [
        ("rnnflow make_dataset", ours),
        ("keras timeseries_dataset", theirs),
    ]:
        print(
            f"{name:<26}{r['windows']:>10,} windows {r['seconds']:>7.2f} s "
            f"{r['per_second']:>11,.0f} windows/s  peak RSS {r['peak_rss_mb']:,.0f} MB"
        )
    print(f"ratio (windows/s): {ours['per_second'] / theirs['per_second']:.1f}x")


if __name__ == "__main__":
    main()
