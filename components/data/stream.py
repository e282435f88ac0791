"""Panels larger than memory: a Parquet folder read one file (shard) at a time.

`data.stream: true`. Nothing holds the whole panel: one pass over the time
column cuts the time axis (`panel.time_cut`'s rule), one pass over the rows
fits each series' training statistics and counts its windows, and every
epoch then reads the shards again in a new order, drawing each series'
windows (`train.windows_per_series`) through a bounded shuffle buffer into
tf.data. Validation, test and the forecast read the shards the same way.
What stays in memory is per series (statistics, window counts: tens of
bytes each) plus the shuffle buffer and up to as many windows again, read
ahead in a thread while the model trains.

Each file must hold whole series (hive-partitioned by the id column, or by a
shard column the writer chose); within a file rows may come in any order.
The numbers equal the in-memory path's for the same windows: the same cut,
statistics, windows, persistence and seasonal naive (tests/test_stream.py).
"""

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.config.schema import DataSpec, SplitSpec, WindowSpec
from components.data.panel import PanelCut, cut_labels, time_cut
from components.data.preprocess import ScaledSplit, SeriesNormalizer
from components.data.windowing import window_series, window_starts

SPLITS = ("train", "val", "test")
SHUFFLE_WINDOWS = 65_536  # the shuffle buffer: windows of several shards mixed
FIRST_FLUSH = 8_192  # an epoch's first mix: the model waits for it (then x2 each)
BLOCK_BATCHES = 64  # batches handed from Python to tf.data at once
SHARD_ROWS = 262_144  # rows read together (files grouped up to about this many)


@dataclass(frozen=True)
class ShardRows:
    """One shard's series (a group of files read together), sorted by series
    then time.

    Attributes:
        ids: the shard's series keys, sorted; bounds (n + 1,) their row offsets.
        times: (N,) time keys (nanoseconds when `datetime`); values (N, K).
    """

    files: tuple[str, ...]
    ids: tuple[str, ...]
    bounds: np.ndarray
    times: np.ndarray
    values: np.ndarray
    datetime: bool = False


@dataclass(frozen=True)
class StreamedPanel:
    """What one scan learned about a panel on disk; the rows stay there.

    Attributes:
        shards: groups of files read together, in reading order; `first`
            (F + 1,) the index of each shard's first kept series (series of
            a shard are contiguous).
        normalizer: each kept series' training mean and std (S, K).
        scale: (S, K) each series' `scale_of` statistic (the MASE
            denominator; NaN where zero or not asked for).
        windows: per split, (S,) whole windows of each series.
        skipped: series with fewer training rows than one window.
    """

    data: DataSpec
    window: WindowSpec
    cut: PanelCut
    cut_text: tuple[str, str]
    datetime: bool
    shards: tuple[tuple[str, ...], ...]
    first: np.ndarray
    normalizer: SeriesNormalizer
    scale: np.ndarray
    windows: dict[str, np.ndarray]
    skipped: tuple[str, ...]
    rows: int
    digest: str
    index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def source(self) -> str:
        return self.data.path

    @property
    def sha256(self) -> str:
        return ""  # the rows are never hashed: `digest` names the files

    @property
    def series(self) -> tuple[str, ...]:
        return self.normalizer.series

    @property
    def targets(self) -> list[str]:
        return list(self.normalizer.columns)

    @property
    def context(self) -> int:
        """Rows before a split's cut that its first window reads."""
        return self.window.input_width + self.window.offset

    def summary(self) -> str:
        n = {s: int(self.windows[s].sum()) for s in SPLITS}
        return (
            f"{sum(map(len, self.shards))} files ({len(self.shards)} shards), "
            f"{len(self.series)} series, {self.rows} rows "
            f"streamed; windows train {n['train']}, val {n['val']}, test "
            f"{n['test']}; cut {self.cut_text[0]} / {self.cut_text[1]}"
            + (f"; {len(self.skipped)} series skipped (too short)" if self.skipped else "")
        )


def shard_files(path: str) -> list[str]:
    """The Parquet files of a folder (any depth, hive-partitioned or not) or
    the one file `path` names, sorted."""
    root = Path(path)
    if root.is_file():
        return [str(root)]
    if not root.is_dir():
        raise DataError(f"data.path {path}: no such file or folder (data.stream reads Parquet).")
    files = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(root, followlinks=True)
        for name in names if name.endswith(".parquet")
    )  # fmt: skip
    if not files:
        raise DataError(f"data.path {path}: no .parquet file in the folder.")
    return files


def group_files(files: list[str], rows: int, shard_rows: int) -> tuple[tuple[str, ...], ...]:
    """Consecutive files grouped into shards of about `shard_rows` rows
    (`rows` in all): many small files, e.g. one per series, cost one read."""
    per_shard = max(1, int(shard_rows // max(rows / len(files), 1)))
    return tuple(tuple(files[i : i + per_shard]) for i in range(0, len(files), per_shard))


def read_shard(files: tuple[str, ...], data: DataSpec) -> ShardRows:
    """Read the id, time and target columns of a group of files (an id that
    is a hive partition key comes from the folder names), sorted by series
    then time; missing values, duplicate times and non-numeric targets are
    refused naming the file and column."""
    columns = [data.id_column, data.time_column, *data.targets]
    frame = _read_group(files, columns, data.path)
    for name in data.targets:
        column = frame[name]
        if not pd.api.types.is_numeric_dtype(column):
            raise DataError(f"{files[0]}: target column {name!r} is {column.dtype}, not numbers.")
        if column.isna().any():
            raise DataError(
                f"{_file_with_gap(files, name)}: target column {name!r} has empty "
                "values; a streamed panel takes complete rows (fill them when "
                "writing the files)."
            )
    codes, ids = pd.factorize(frame[data.id_column].astype(str), sort=True)
    times = _time_keys(frame[data.time_column], data.time_column, files[0])
    order = np.lexsort((times, codes))
    codes, times = codes[order], times[order]
    values = frame[data.targets].to_numpy(np.float64)[order]
    same = (np.diff(codes) == 0) & (np.diff(times) == 0)
    if same.any():
        at = int(np.argmax(same))
        raise DataError(
            f"{data.path}: series {ids[codes[at]]!r} has two rows at the same time "
            f"({data.time_column} {times[at]})."
        )
    bounds = np.searchsorted(codes, np.arange(len(ids) + 1))
    datetime = not pd.api.types.is_numeric_dtype(frame[data.time_column])
    return ShardRows(files, tuple(ids), bounds, times, values, datetime)


def _read_group(files: tuple[str, ...], columns: list[str], root: str) -> pd.DataFrame:
    """`columns` of `files` as one frame: one read for the group, or file by
    file where their schemas differ (a key that is a column in one file and
    a folder name for another)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    folder = Path(root).is_dir()

    def read(paths):
        found = pads.dataset(
            list(paths), format="parquet", partitioning="hive" if folder else None,
            partition_base_dir=str(root) if folder else None,
        )  # fmt: skip
        missing = [c for c in columns if c not in found.schema.names]
        if missing:
            raise DataError(
                f"{paths[0]}: no column {missing[0]!r} (in the file or a "
                f"`{missing[0]}=` folder above it); it has {found.schema.names}."
            )
        return found.to_table(columns=columns).to_pandas()

    try:
        return read(files)
    except (pa.ArrowTypeError, pa.ArrowInvalid, DataError):
        if len(files) == 1:
            raise
    return pd.concat([read([path]) for path in files], ignore_index=True)


def _file_with_gap(files: tuple[str, ...], column: str) -> str:
    """Which of `files` has an empty `column` (read again, on the error path only)."""
    import pyarrow.parquet as pq

    for path in files:
        try:
            if pq.read_table(path, columns=[column]).column(0).null_count:
                return path
        except (KeyError, ValueError, OSError):
            continue
    return files[0]


def _time_keys(column: pd.Series, name: str, path: str) -> np.ndarray:
    if column.isna().any():
        raise DataError(f"{path}: time column {name!r} has empty values.")
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy()
    try:
        return pd.DatetimeIndex(pd.to_datetime(column, utc=True)).asi8
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: column {name!r} is not a time: {exc}") from None


def scan_panel(
    data: DataSpec, split: SplitSpec, window: WindowSpec, say=None,
    shard_rows: int = SHARD_ROWS, scale_of=None,
) -> StreamedPanel:
    """Two passes over the files: the time column (the cut), then the rows,
    shard by shard (each series' statistics, MASE scale and windows per
    split). Files are grouped into shards of about `shard_rows` rows, read
    together (many small files, e.g. one per series, cost one read).

    `scale_of(train_values) -> (K,)`: a per-series statistic of the
    training rows kept as `scale` (the MASE denominator,
    `evaluation.streamed.mase_scale_of`); NaN without it.

    A series with fewer training rows than one window is skipped (listed);
    `data.short_series: error` refuses the panel instead. A series found in
    two shards is refused: a file must hold whole series."""
    import pyarrow.dataset as pads

    say = say or (lambda _message: None)
    files = shard_files(data.path)
    everything = pads.dataset(files, format="parquet")
    if data.time_column not in everything.schema.names:
        raise DataError(
            f"{files[0]}: no time column {data.time_column!r}; it has "
            f"{everything.schema.names}."
        )
    axis, rows, kind = np.zeros(0), 0, None
    for batch in everything.to_batches(columns=[data.time_column]):  # pass 1
        column = batch.column(0).to_pandas()
        kind = kind or column.dtype
        axis = np.union1d(axis, _time_keys(column, data.time_column, data.path))
        rows += len(column)
    datetime = not pd.api.types.is_numeric_dtype(kind)
    index = pd.DatetimeIndex(pd.to_datetime(axis, utc=True)) if datetime else pd.Index(axis)
    cut = time_cut(index, split)
    shards = group_files(files, rows, shard_rows)
    say(f"time axis: {len(axis)} stamps; {rows} rows in {len(files)} files, "
        f"read as {len(shards)} shards")  # fmt: skip
    found = _Statistics(window, scale_of, len(data.targets))
    owner: dict[str, int] = {}
    first = [0]
    for k, group in enumerate(shards):  # pass 2: statistics and window counts
        shard = read_shard(group, data)
        for j, name in enumerate(shard.ids):
            if name in owner:
                raise DataError(
                    f"series {name!r} is in {shards[owner[name]][0]} and in "
                    f"{group[0]} (or files read with them): each file of a "
                    "streamed panel must hold whole series (partition by "
                    f"{data.id_column!r}, or by a shard column that keeps a "
                    "series in one file)."
                )
            owner[name] = k
            a, b = shard.bounds[j], shard.bounds[j + 1]
            found.add(name, shard.times[a:b], shard.values[a:b], cut)
        first.append(len(found.ids))
        if (k + 1) % 10 == 0:
            say(f"scanned {k + 1}/{len(shards)} shards, {len(found.ids)} series")
    if found.skipped and data.short_series == "error":
        raise DataError(
            f"{len(found.skipped)} series have fewer training rows than one window "
            f"needs ({window.span}), first {found.skipped[0]!r}; set "
            "`data.short_series: skip` to leave them out, or shorten the window."
        )
    if not found.ids:
        raise DataError(
            f"no series of {data.path} has the {window.span} training rows one "
            "window needs."
        )
    return StreamedPanel(
        data=data, window=window, cut=cut, cut_text=cut_labels(index, cut), datetime=datetime,
        shards=shards, first=np.asarray(first), normalizer=found.normalizer(data),
        scale=np.asarray(found.scale).reshape(-1, len(data.targets)),
        windows={s: np.asarray(found.windows[s], np.int64) for s in SPLITS},
        skipped=tuple(found.skipped), rows=found.rows, digest=_digest(files, data.path),
        index={name: j for j, name in enumerate(found.ids)},
    )  # fmt: skip


def _digest(files: list[str], root: str) -> str:
    """Which files, how large, when written: a cheap identity of the panel
    (its rows are never hashed)."""
    digest = hashlib.sha256()
    for path in files:
        stat = Path(path).stat()
        digest.update(f"{os.path.relpath(path, root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class _Statistics:
    """Per-series results of the scan, gathered series by series."""

    def __init__(self, window: WindowSpec, scale_of, n_targets: int):
        self.window, self.scale_of = window, scale_of
        self.ids, self.mean, self.std, self.scale = [], [], [], []
        self.windows = {s: [] for s in SPLITS}
        self.skipped, self.rows = [], 0
        # the panel's training rows together (for a series constant in training)
        self.count, self.total, self.squares = 0, np.zeros(n_targets), np.zeros(n_targets)

    def add(self, name: str, times: np.ndarray, values: np.ndarray, cut: PanelCut):
        self.rows += len(times)
        ranges = part_ranges(times, cut, self.window.input_width + self.window.offset)
        a, b = ranges["train"]
        if b - a < self.window.span:
            self.skipped.append(name)
            return
        train = values[a:b]
        self.ids.append(name)
        self.mean.append(train.mean(axis=0))
        self.std.append(train.std(axis=0))
        self.count += len(train)
        self.total += train.sum(axis=0)
        self.squares += (train**2).sum(axis=0)
        self.scale.append(
            self.scale_of(train) if self.scale_of else np.full(train.shape[1], np.nan)
        )
        for split, (first, end) in ranges.items():
            self.windows[split].append(len(window_starts(end - first, self.window)))

    def normalizer(self, data: DataSpec) -> SeriesNormalizer:
        mean, std = np.asarray(self.mean), np.asarray(self.std)
        panel_mean = self.total / self.count
        panel_std = np.sqrt(np.maximum(self.squares / self.count - panel_mean**2, 0))
        usable = np.isfinite(std) & (std > 0)
        std = np.where(usable, std, np.where(panel_std > 0, panel_std, 1.0))
        return SeriesNormalizer(tuple(data.targets), tuple(self.ids), mean, std)


def part_ranges(times: np.ndarray, cut: PanelCut, context: int) -> dict[str, tuple]:
    """One series' (first, end) rows of each split; validation and test start
    `context` rows before their cut (`panel.split_bounds`' rule)."""
    to_val = int(np.searchsorted(times, cut.val_from, side="left"))
    to_test = int(np.searchsorted(times, cut.test_from, side="left"))

    def with_context(start, end):
        return (start, start) if end <= start else (max(0, start - context), end)

    return {
        "train": (0, to_val),
        "val": with_context(to_val, to_test),
        "test": with_context(to_test, len(times)),
    }


@dataclass(frozen=True)
class ShardWindows:
    """The windows of one split of one shard.

    Attributes:
        x: (W, L, K) scaled inputs; y: (W, T, K) scaled targets (float32).
        owners: (W,) each window's series (index into the panel's series).
        series: (n,) each part's series, in `bounds` order.
        levels, bounds: the split's rows in original units and their series
            offsets (for the baselines and the scores).
    """

    x: np.ndarray
    y: np.ndarray
    owners: np.ndarray
    levels: np.ndarray
    bounds: np.ndarray
    series: np.ndarray  # (n,) the series of each part, in `bounds` order
    scaled: np.ndarray  # (N, K) `levels` scaled, float32


def shard_windows(
    panel: StreamedPanel, k: int, split: str, per_series: int | None = None,
    rng: np.random.Generator | None = None, shard: ShardRows | None = None,
) -> ShardWindows:
    """Read shard `k` (unless given, already read) and window one split of
    its kept series: every window, or at most `per_series` of each series
    drawn by `rng`."""
    shard = shard or read_shard(panel.shards[k], panel.data)
    parts, owners, lengths = [], [], []
    for j, name in enumerate(shard.ids):
        at = panel.index.get(name)
        if at is None:  # skipped: too short
            continue
        a, b = shard.bounds[j], shard.bounds[j + 1]
        first, end = part_ranges(shard.times[a:b], panel.cut, panel.context)[split]
        parts.append(shard.values[a + first : a + end])
        owners.append(at)
        lengths.append(end - first)
    owners = np.asarray(owners, np.int64)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    levels = np.concatenate(parts) if parts else np.zeros((0, len(panel.targets)))
    rows_of = np.repeat(owners, lengths)
    scaled = ((levels - panel.normalizer.mean[rows_of]) / panel.normalizer.std[rows_of])
    scaled = scaled.astype(np.float32)
    starts = window_starts(len(levels), panel.window, bounds)
    local = window_series(len(levels), panel.window, bounds)
    if per_series is not None and rng is not None and len(starts):
        keep = _draw(local, per_series, rng)
        starts, local = starts[keep], local[keep]
    shift = panel.window.input_width + panel.window.offset
    x = scaled[starts[:, None] + np.arange(panel.window.input_width)]
    y = scaled[starts[:, None] + shift + np.arange(panel.window.horizon)]
    return ShardWindows(x, y, owners[local], levels, bounds, owners, scaled)


def _draw(owners: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of at most `cap` items per series (`owners` sorted), drawn
    uniformly within each series."""
    order = np.argsort(owners + rng.random(len(owners)))  # series, then random
    first = np.searchsorted(owners, owners, side="left")
    rank = np.arange(len(owners)) - first[order]
    return np.sort(order[rank < cap])


def epoch_windows(panel: StreamedPanel, split: str, per_series: int | None) -> int:
    """Windows one pass over `split` yields."""
    counts = panel.windows[split]
    return int(np.minimum(counts, per_series).sum() if per_series else counts.sum())


def batches(
    panel: StreamedPanel, split: str, batch_size: int, per_series: int | None = None,
    seed: int | None = None, epoch: int = 0, buffer: int = SHUFFLE_WINDOWS,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, y) batches of one pass over `split`: `batch_blocks` one by one."""
    for x, y in batch_blocks(panel, split, batch_size, per_series, seed, epoch, buffer):
        yield from zip(x, y)


def batch_blocks(
    panel: StreamedPanel, split: str, batch_size: int, per_series: int | None = None,
    seed: int | None = None, epoch: int = 0, buffer: int = SHUFFLE_WINDOWS,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks (n, B, ...) of up to `BLOCK_BATCHES` consecutive (x, y) batches
    of one pass over `split` (the last batch alone when short), handed to
    tf.data whole: the generator then takes the GIL once a block, not once a
    step. With a `seed` (training), the
    files come in an order new each `epoch`, each series gives at most
    `per_series` windows, and the windows of several files are mixed in a
    buffer of `buffer` windows (the first `FIRST_FLUSH`, doubling: training
    starts without waiting for a whole buffer); without, every window in
    file order.

    The shards are read and windowed one after another in a thread, up to a
    buffer ahead, while the batches already made are handed out: reading
    (pyarrow) and copying windows (numpy) release the GIL, so the next
    buffer fills while the model trains instead of stalling it. One thread,
    in order: the draws are the same as read inline."""
    shuffle = seed is not None
    draw = np.random.default_rng([seed or 0, epoch])
    mix = np.random.default_rng([seed or 0, epoch, 1]) if shuffle else None
    cap = per_series if shuffle else None
    order = draw.permutation(len(panel.shards)) if shuffle else range(len(panel.shards))
    counts = panel.windows[split]
    sizes = {
        k: int(np.minimum(part, cap).sum() if cap else part.sum())
        for k in order
        if (part := counts[panel.first[k] : panel.first[k + 1]]).sum()
    }  # fmt: skip
    held_x, held_y, held = [], [], 0
    limit = min(buffer, FIRST_FLUSH)  # the first batches come soon; then it doubles
    with _Ahead(lambda k: shard_windows(panel, k, split, cap, draw), sizes, buffer) as ahead:
        for found in ahead:
            held_x.append(found.x)
            held_y.append(found.y)
            held += len(found.x)
            if held >= limit:
                yield from _flush(held_x, held_y, batch_size, mix, False)
                held = sum(len(x) for x in held_x)
                limit = min(2 * limit, buffer)
    yield from _flush(held_x, held_y, batch_size, mix, True)


class _Ahead:
    """`make(k)` for each key of `sizes` in order, run in one worker thread
    while at most `limit` windows (by `sizes`) wait, ready or not; iterate to
    get the results in order. Leaving the `with` block (a finished or
    abandoned epoch) waits for the shard being read and drops the rest."""

    def __init__(self, make, sizes: dict[int, int], limit: int):
        from concurrent.futures import ThreadPoolExecutor

        self._make, self._sizes, self._limit = make, sizes, limit
        self._keys = iter(sizes)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rnnflow-shards")
        self._waiting, self._windows = [], 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self):
        self._top_up()
        while self._waiting:
            k, future = self._waiting.pop(0)
            self._windows -= self._sizes[k]
            self._top_up()
            yield future.result()

    def _top_up(self):
        while self._windows < self._limit or not self._waiting:
            k = next(self._keys, None)
            if k is None:
                return
            self._waiting.append((k, self._pool.submit(self._make, k)))
            self._windows += self._sizes[k]


def _flush(held_x: list, held_y: list, batch_size: int, rng, last: bool):
    """Emit the held windows as blocks of batches (shuffled when `rng`);
    unless `last`, keep back the part that does not fill a batch."""
    if not held_x:
        return
    x, y = np.concatenate(held_x), np.concatenate(held_y)
    if rng is not None:
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
    end = len(x) if last else len(x) - len(x) % batch_size
    held_x.clear()
    held_y.clear()
    if end < len(x):
        held_x.append(x[end:])
        held_y.append(y[end:])
    full, block = end - end % batch_size, batch_size * BLOCK_BATCHES
    for i in range(0, full, block):  # views, no copies
        j = min(i + block, full)
        yield (x[i:j].reshape(-1, batch_size, *x.shape[1:]),
               y[i:j].reshape(-1, batch_size, *y.shape[1:]))  # fmt: skip
    if full < end:
        yield x[None, full:end], y[None, full:end]


def dataset(
    panel: StreamedPanel, split: str, batch_size: int, per_series: int | None = None,
    seed: int | None = None, start_epoch: int = 0,
):
    """`batch_blocks` as a tf.data pipeline of batches, of known length: a
    training one (`seed` given) draws anew each time Keras starts an epoch;
    a block is kept ready ahead."""
    import tensorflow as tf

    window, n_targets = panel.window, len(panel.targets)
    epochs = iter(range(start_epoch, 1 << 62))
    signature = (
        tf.TensorSpec((None, None, window.input_width, n_targets), tf.float32),
        tf.TensorSpec((None, None, window.horizon, n_targets), tf.float32),
    )
    found = tf.data.Dataset.from_generator(
        lambda: batch_blocks(panel, split, batch_size, per_series, seed, next(epochs)),
        output_signature=signature,
    ).unbatch()
    n_batches = -(-epoch_windows(panel, split, per_series if seed is not None else None)
                  // batch_size)  # fmt: skip
    found = found.apply(tf.data.experimental.assert_cardinality(n_batches))
    options = tf.data.Options()
    # tf.data's autotuner, with a Python generator upstream, sometimes held
    # `fit` back after its last step until the tuner's next wake-up (its
    # period doubles from 10 ms: fits ended at 10.24 or 20.48 s; bench/README)
    options.autotune.enabled = False
    return found.prefetch(BLOCK_BATCHES).with_options(options)


def sample_splits(panel: StreamedPanel, max_windows: int = 50_000) -> dict[str, ScaledSplit]:
    """Train and validation rows of the first files, up to about `max_windows`
    training windows: what a linear skip or an `auto` choice is fitted on
    (the same files every time, so a rerun builds the same model)."""
    found = {s: [] for s in ("train", "val")}
    taken = 0
    for k in range(len(panel.shards)):
        shard = read_shard(panel.shards[k], panel.data)  # once for both splits
        for split in found:
            found[split].append(shard_windows(panel, k, split, shard=shard))
        taken += len(found["train"][-1].x)
        if taken >= max_windows:
            break
    result = {}
    for split, parts in found.items():
        lengths = np.concatenate([np.diff(p.bounds) for p in parts])
        scaled = np.concatenate([p.scaled for p in parts])
        result[split] = ScaledSplit(
            scaled, scaled, np.concatenate([p.levels for p in parts]),
            pd.RangeIndex(len(scaled)), np.concatenate([[0], np.cumsum(lengths)]),
            tuple(panel.series[j] for p in parts for j in p.series),
        )  # fmt: skip
    return result
