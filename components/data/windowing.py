"""Arrays -> sliding windows, as numpy (small splits) or a streamed tf.data pipeline.

Shapes, everywhere: inputs (B, L, C) with L = `input_width`, C = features;
targets (B, T, K) with T = `horizon`, K = targets. With S = `stride` and
G = `offset`, window `i` starts at s = i*S, reads input rows [s, s + L) and
target rows [s + L + G, s + L + G + T). Windows never cross a split boundary
because each split is windowed on its own.

A panel split holds many series one after another in the same arrays;
`bounds` (S + 1,) are their row offsets (series j owns rows
[bounds[j], bounds[j + 1])) and every window lies inside one series.

Example, rows 0..5, L=2, T=1:
    window 0: inputs rows [0, 1] -> target row [2]
    window 3: inputs rows [3, 4] -> target row [5]   (4 windows in all)
Same rows with S=2, G=1: window 0: [0, 1] -> [3]; window 1: [2, 3] -> [5].
"""

import numpy as np

from components.config.schema import WindowSpec


def window_starts(
    n_rows: int, spec: WindowSpec, bounds: np.ndarray | None = None
) -> np.ndarray:
    """First input row of every whole window in a split of `n_rows` rows; with
    `bounds`, of every window inside one series (series after series)."""
    if bounds is None:
        last_start = n_rows - spec.span  # the final window ends on the last row
        return np.arange(0, max(last_start + 1, 0), spec.stride, dtype=np.int64)
    return np.concatenate(
        [np.zeros(0, np.int64)]
        + [
            int(first) + window_starts(int(end - first), spec)
            for first, end in zip(bounds[:-1], bounds[1:])
        ]
    )


def window_series(n_rows: int, spec: WindowSpec, bounds: np.ndarray | None = None):
    """Index of the series each window of `window_starts` belongs to (W,)."""
    if bounds is None:
        return np.zeros(len(window_starts(n_rows, spec)), np.int64)
    counts = [len(window_starts(int(b - a), spec)) for a, b in zip(bounds[:-1], bounds[1:])]
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def make_windows(
    inputs: np.ndarray,
    targets: np.ndarray,
    spec: WindowSpec,
    bounds: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Materialize all windows of one split (for evaluation and baselines).

    Args:
        inputs: (N, C) rows of input columns.
        targets: (N, K) rows of target columns, aligned with `inputs`.
        bounds: series offsets of a panel split (see the module docstring).

    Returns:
        x: (W, L, C) and y: (W, T, K), W = ceil((N - L - G - T + 1) / S).
    """
    starts = window_starts(len(inputs), spec, bounds)[:, None]  # -> (W, 1)
    x = inputs[starts + np.arange(spec.input_width)]  # -> (W, L, C)
    y = targets[starts + _target_shift(spec) + np.arange(spec.horizon)]  # (W, T, K)
    return x, y


def make_dataset(
    inputs: np.ndarray,
    targets: np.ndarray,
    spec: WindowSpec,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    start_epoch: int = 0,
    bounds: np.ndarray | None = None,
    per_series: int | None = None,
):
    """Stream windows of one split as a `tf.data.Dataset` of (x, y) batches.

    Nothing per window flows through the pipeline: each element is a slice of
    the (per-epoch shuffled) window starts, gathered from the split's rows
    inside the graph. Memory stays at one copy of the rows
    however wide or many the windows are. Shuffling reorders windows of this
    split only (pass it for training, never for validation or test); each epoch
    gets a new order, the same for the same `seed`; a training resumed after
    `start_epoch` epochs gets the orders an uninterrupted one would have seen.

    With `per_series` (a panel, shuffled), each epoch draws at most that many
    windows of each series (`bounds`), anew every epoch, uniformly within
    the series: every series weighs about the same however long it is.
    """
    import tensorflow as tf  # heavy; imported where needed

    rows_x = tf.constant(inputs, dtype=tf.float32)  # (N, C)
    rows_y = tf.constant(targets, dtype=tf.float32)  # (N, K)
    offsets_x = tf.range(spec.input_width, dtype=tf.int64)  # (L,)
    offsets_y = _target_shift(spec) + tf.range(spec.horizon, dtype=tf.int64)  # (T,)
    starts = tf.constant(window_starts(len(inputs), spec, bounds))  # (W,)
    capped = bool(shuffle and per_series and bounds is not None)
    owners = window_series(len(inputs), spec, bounds)
    n_windows = len(owners)
    if capped:
        n_windows = int(np.minimum(np.bincount(owners), per_series).sum())
    n_batches = -(-n_windows // batch_size)

    def batches(order):  # (W,) -> dataset of (B,) slices, the last one partial
        return tf.data.Dataset.range(n_batches).map(
            lambda b: order[b * batch_size : (b + 1) * batch_size]
        )

    def gather(batch_starts):  # (B,) -> (B, L, C), (B, T, K)
        column = batch_starts[:, None]
        return (
            tf.gather(rows_x, column + offsets_x),
            tf.gather(rows_y, column + offsets_y),
        )

    if shuffle:
        # Each dataset owns its epoch counter (no TF random state shared with
        # other datasets); each pass draws the next seed and permutes in-graph.
        base = shuffle_base(seed)
        epoch = tf.Variable(start_epoch, dtype=tf.int64, trainable=False)
        epoch_seeds = tf.data.Dataset.from_tensors(np.int64(0)).map(
            lambda _: epoch.assign_add(1)
        )
        def order_of(e):
            seed = tf.constant(base, tf.int64)
            if capped:
                drawn = capped_draw(starts, owners, per_series, seed, e)
                return epoch_order(drawn, seed, e)
            return epoch_order(starts, seed, e)

        dataset = epoch_seeds.flat_map(lambda e: batches(order_of(e)))
    else:
        dataset = batches(starts)
    # flat_map hides the length; Keras needs it to know where an epoch ends.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def target_rows(
    n_rows: int, spec: WindowSpec, bounds: np.ndarray | None = None
) -> np.ndarray:
    """Row of each window's first target step, e.g. for time stamps in plots."""
    return window_starts(n_rows, spec, bounds) + _target_shift(spec)


def epoch_order(items, base, epoch):
    """`items` (a tensor) in the order of epoch `epoch` (int64 tensors, 1-based
    `epoch`, `base` from `shuffle_base`): the one definition of the training
    order, shared by `make_dataset` and the compiled loops so that all of them
    see the same windows in the same order."""
    import tensorflow as tf

    return tf.random.experimental.stateless_shuffle(items, seed=tf.stack([base, epoch]))


def capped_draw(items, owners: np.ndarray, cap: int, base, epoch):
    """At most `cap` of `items` (a tensor, (W,)) per series, uniformly at
    random within each series, different every epoch: `owners` (W,) is each
    item's series index, sorted (as `window_series` gives it)."""
    import tensorflow as tf

    owners = tf.constant(owners, tf.int64)
    first = tf.searchsorted(owners, owners, side="left", out_type=tf.int64)  # per series
    noise = tf.random.stateless_uniform(
        tf.shape(owners), seed=tf.stack([base, epoch + (1 << 40)]), dtype=tf.float64
    )
    ranked = tf.cast(tf.argsort(tf.cast(owners, tf.float64) + noise, stable=True), tf.int64)
    rank = tf.range(tf.size(owners, out_type=tf.int64)) - tf.gather(first, ranked)
    return tf.gather(items, tf.boolean_mask(ranked, rank < cap))


def shuffle_base(seed: int | None) -> int:
    """The first half of every epoch's shuffle seed (the epoch is the second)."""
    return int(np.random.default_rng(seed).integers(2**31))


def _target_shift(spec: WindowSpec) -> int:
    """Rows from a window's first input row to its first target row."""
    return spec.input_width + spec.offset
