"""Chronological split, per-split cleaning and transforms, and a train-only
z-score normalizer.

Nothing is ever fitted on validation or test rows: the normalizer sees the
training split alone, and the same statistics are applied to every split.
Missing values are filled and series differenced within each split, so no
value crosses a split boundary.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.config.schema import DataSpec, SplitSpec, WindowSpec


@dataclass(frozen=True)
class Splits:
    """Three consecutive, non-overlapping slices of one series (train < val < test)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        """Row count of each split, for messages and params."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def split_chronologically(frame: pd.DataFrame, spec: SplitSpec) -> Splits:
    """Cut `frame` into train, val, test in time order; never shuffled.

    `spec.test` and `spec.val` are row counts when >= 1, fractions when < 1.
    Example: 296 rows with test=100, val=30 give rows [0, 166), [166, 196),
    [196, 296).
    """
    n_train, n_val, _ = split_rows(len(frame), spec)
    return Splits(
        train=frame.iloc[:n_train],
        val=frame.iloc[n_train : n_train + n_val],
        test=frame.iloc[n_train + n_val :],
    )


def split_rows(n: int, spec: SplitSpec) -> tuple[int, int, int]:
    """Rows of (train, val, test) for a series of `n` rows; raises when no
    training row is left."""
    n_test = _rows(spec.test, n)
    n_val = _rows(spec.val, n)
    n_train = n - n_val - n_test
    if n_train <= 0:
        raise DataError(
            f"`split.val` ({spec.val}) and `split.test` ({spec.test}) take "
            f"{n_val + n_test} rows, leaving none of the {n} rows for training."
        )
    return n_train, n_val, n_test


def check_window_fits(sizes: dict[str, int], spec: WindowSpec) -> None:
    """Every non-empty split must hold at least one whole window.

    Args:
        sizes: rows per split, e.g. `Splits.sizes()` after cleaning.
    """
    need = spec.span
    optional_empty = {"val"} if sizes["val"] == 0 else set()
    short = {
        name: size
        for name, size in sizes.items()
        if size < need and name not in optional_empty
    }
    if short:
        detail = ", ".join(f"{name} has {size}" for name, size in short.items())
        raise DataError(
            f"`window.input_width` ({spec.input_width}) + `window.offset` "
            f"({spec.offset}) + `window.horizon` ({spec.horizon}) needs {need} "
            f"rows per split, but {detail} "
            f"(sizes: {sizes}). Shorten the window or change `split`."
        )


def check_panel_windows(windows: dict[str, int], spec: WindowSpec) -> None:
    """A panel's training and test splits must hold at least one whole window
    (`windows`: count per split; validation may hold none)."""
    empty = [name for name in ("train", "test") if not windows.get(name)]
    if empty:
        raise DataError(
            f"no series has a whole window in the {' and '.join(empty)} split: "
            f"`window.input_width` ({spec.input_width}) + `window.offset` "
            f"({spec.offset}) + `window.horizon` ({spec.horizon}) needs "
            f"{spec.span} rows (windows per split: {windows}). Shorten the window "
            "or change `split`."
        )


@dataclass(frozen=True)
class Normalizer:
    """Per-column z-score: (x - mean) / std, with statistics from training rows."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]  # or arrays (..., n) from `SeriesNormalizer`
    std: tuple[float, ...]

    def transform(
        self, frame: pd.DataFrame, columns: list[str] | None = None
    ) -> np.ndarray:
        """Scale `frame[columns]` (default all fitted columns) -> float32 (rows, n)."""
        columns = list(self.columns) if columns is None else columns
        idx = [self.columns.index(c) for c in columns]
        values = frame[columns].to_numpy(dtype=np.float64)
        return ((values - self._mean()[..., idx]) / self._std()[..., idx]).astype(
            np.float32
        )

    def scale(self, values: np.ndarray, columns: list[str]) -> np.ndarray:
        """Array form of `transform`: `values[..., j]` belongs to `columns[j]`."""
        idx = [self.columns.index(c) for c in columns]
        return (values - self._mean()[..., idx]) / self._std()[..., idx]

    def inverse(self, values: np.ndarray, columns: list[str]) -> np.ndarray:
        """Back to original units; `values[..., j]` belongs to `columns[j]`."""
        idx = [self.columns.index(c) for c in columns]
        return values * self._std()[..., idx] + self._mean()[..., idx]

    def for_rows(self, bounds: np.ndarray | None) -> "Normalizer":
        """The statistics of each row of a split (the same for every row here;
        `SeriesNormalizer` gives each series its own)."""
        return self

    def for_windows(self, window_series: np.ndarray) -> "Normalizer":
        """The statistics of each window (see `for_rows`)."""
        return self

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-friendly form: {column: {mean, std}}."""
        return {
            c: {"mean": m, "std": s}
            for c, m, s in zip(self.columns, self.mean, self.std, strict=True)
        }

    @classmethod
    def from_dict(cls, stats: dict[str, dict[str, float]]) -> "Normalizer":
        """Inverse of `to_dict`."""
        columns = tuple(stats)
        return cls(
            columns,
            tuple(float(stats[c]["mean"]) for c in columns),
            tuple(float(stats[c]["std"]) for c in columns),
        )

    def _mean(self) -> np.ndarray:
        return np.asarray(self.mean, dtype=np.float64)

    def _std(self) -> np.ndarray:
        return np.asarray(self.std, dtype=np.float64)


def fit_normalizer(train: pd.DataFrame) -> Normalizer:
    """Fit mean and std (ddof=0) per column on the training split only."""
    mean = train.mean(axis=0)
    std = train.std(axis=0, ddof=0)
    constant = [str(c) for c in train.columns if not std[c] > 0]
    if constant:
        raise DataError(
            f"Column(s) {constant} are constant on the training split "
            f"({len(train)} rows): zero standard deviation cannot be normalized. "
            "Drop them from `data.features` / `data.targets`."
        )
    return Normalizer(
        tuple(map(str, train.columns)),
        tuple(float(v) for v in mean),
        tuple(float(v) for v in std),
    )


def _rows(value: float, n: int) -> int:
    return int(value) if value >= 1 else int(round(value * n))


@dataclass(frozen=True)
class PreparedSplit:
    """One split after filling and transforming, before scaling.

    Attributes:
        frame: what the model sees (differenced under `diff`/`log_diff`).
        levels: the target columns in original units, row-aligned with `frame`,
            used to re-integrate forecasts and to score them in original units.
    """

    frame: pd.DataFrame
    levels: pd.DataFrame
    bounds: np.ndarray | None = None  # a panel's series offsets (windowing)
    series: tuple[str, ...] = ()  # a panel's series keys
    # (S,) rows repeated in front of each series (`data.short_series: pad`):
    # read as window inputs, never by a statistic; None when there are none
    padded: np.ndarray | None = None

    def real_rows(self) -> np.ndarray:
        """(N,) True on the rows that are data, not padding."""
        return real_rows(self.bounds, self.padded, len(self.frame))


def unpadded_bounds(bounds: np.ndarray, padded: np.ndarray) -> np.ndarray:
    """Series offsets once the `padded` rows in front of each are dropped."""
    return bounds - np.concatenate([[0], np.cumsum(padded)])


def real_rows(bounds, padded, n_rows: int) -> np.ndarray:
    """(N,) False on the `padded` rows at the front of each series."""
    mask = np.ones(n_rows, bool)
    if padded is None:
        return mask
    for first, extra in zip(bounds[:-1], padded):
        mask[first : first + extra] = False
    return mask


def prepare_split(
    frame: pd.DataFrame,
    spec: DataSpec,
    targets: list[str],
    keep: list[str] = (),
    lead: int = 0,
) -> PreparedSplit:
    """Fill missing values by `spec.missing`, apply `spec.transform`, then
    lead the known columns (`spec.known`) by `lead` rows.

    Leading puts, on row t, a known column's value at t + lead, so the
    inputs of a window (L rows) carry the known values up to its last
    target step (`lead = offset + horizon`) and every architecture reads them
    with no change to its input shape. The last `lead` rows of the part have
    no led value (NaN): they are only ever targets, never inputs.

    Args:
        keep: columns never transformed (calendar and static features; the
            known columns are kept too).
    """
    filled = fill_missing(frame, spec.missing)
    levels = filled[targets]
    keep = [*keep, *(c for c in spec.known if c not in keep)]
    out = filled
    if spec.transform != "none":
        values = [c for c in filled.columns if c not in keep]
        if spec.transform == "log_diff":
            _require_positive(filled[values])
            changed = np.log(filled[values]).diff()
        else:
            changed = filled[values].diff()
        out = pd.concat([changed, filled[list(keep)]], axis=1)[filled.columns]
        out, levels = out.iloc[1:], levels.iloc[1:]  # the first row has no change
    if lead and spec.known:
        out = out.assign(**{c: out[c].shift(-lead) for c in spec.known})
    return PreparedSplit(out, levels)


def known_lead(spec: DataSpec, window: WindowSpec) -> int:
    """Rows the known columns are led by: to the last target step."""
    return window.offset + window.horizon if spec.known else 0


def fill_missing(frame: pd.DataFrame, policy: str) -> pd.DataFrame:
    """Apply `data.missing` inside one split: no value crosses its boundaries.

    `ffill` only looks back; `interpolate` also looks at the next valid value.
    Leading rows that still have gaps (nothing before them to use) are dropped.
    """
    if policy == "error" or not frame.isna().to_numpy().any():
        return frame
    if policy == "drop":
        return frame.dropna()
    if policy == "interpolate":
        method = "time" if isinstance(frame.index, pd.DatetimeIndex) else "linear"
        frame = frame.interpolate(method=method, limit_area="inside")
    filled = frame.ffill()
    first_complete = filled.notna().all(axis=1).to_numpy().argmax()
    return filled.iloc[first_complete:]


def _require_positive(frame: pd.DataFrame) -> None:
    for column in frame.columns:
        bad = (frame[column] <= 0).to_numpy()
        if bad.any():
            row = int(bad.argmax())
            raise DataError(
                f"`data.transform: log_diff` needs positive values, but column "
                f"{column!r} holds {float(frame[column].iloc[row])} at row {row} "
                "of its split; use `diff` instead."
            )


@dataclass(frozen=True)
class ScaledSplit:
    """One split as normalized arrays, ready for windowing.

    Attributes:
        inputs: (N, C) feature columns, float32.
        targets: (N, K) target columns, float32.
        levels: (N, K) target columns in original units, float64.
        index: the N time stamps (or row numbers) of the split.
        id_channel: the last input column is each row's series index
            (`model.id_embedding`), not a feature.
    """

    inputs: np.ndarray
    targets: np.ndarray
    levels: np.ndarray
    index: pd.Index
    bounds: np.ndarray | None = None  # a panel's series offsets (windowing)
    series: tuple[str, ...] = ()  # a panel's series keys
    id_channel: bool = False
    padded: np.ndarray | None = None  # as `PreparedSplit.padded`

    def unpadded_levels(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(levels without the padded rows, their series bounds): what a
        statistic of the data (a MASE scale, a classical fit) reads."""
        if self.padded is None:
            return self.levels, self.bounds
        keep = real_rows(self.bounds, self.padded, len(self.levels))
        return self.levels[keep], unpadded_bounds(self.bounds, self.padded)

    @property
    def features(self) -> np.ndarray:
        """(N, C) the feature columns alone: what a baseline reads."""
        return self.inputs[:, :-1] if self.id_channel else self.inputs


def scale_split(
    split: PreparedSplit,
    normalizer: Normalizer,
    features: list[str],
    targets: list[str],
    id_channel: bool = False,
) -> ScaledSplit:
    """Normalize one split with statistics fitted elsewhere (on train).
    `id_channel`: append each row's series index (its position in
    `split.series`, the training series) as the last input column."""
    rows = normalizer.for_rows(split.bounds)
    inputs = rows.transform(split.frame, features)
    if id_channel:
        inputs = with_series_index(inputs, np.diff(split.bounds))
    return ScaledSplit(
        inputs,
        rows.transform(split.frame, targets),
        split.levels.to_numpy(dtype=np.float64),
        split.frame.index,
        split.bounds,
        split.series,
        id_channel,
        split.padded,
    )


def with_series_index(inputs: np.ndarray, lengths, first: int = 0) -> np.ndarray:
    """`inputs` (N, C) with a last column holding each row's series index:
    `first` for the first `lengths[0]` rows, `first + 1` for the next, ...
    (float32 holds every index below 2**24 exactly)."""
    index = np.repeat(np.arange(first, first + len(lengths)), lengths)
    return np.concatenate([inputs, index[:, None].astype(inputs.dtype)], axis=1)


@dataclass(frozen=True)
class SeriesNormalizer:
    """A panel's z-score: each series' own columns by that series' training
    rows (`data.scale: series`), or every column by the whole panel's
    training rows (`global`); calendar and static channels always by the
    whole panel's (they describe a time or a series, so one series alone
    would make them constant).

    Attributes:
        series: the S series keys, in the panel's order.
        mean, std: (S, n) statistics of each series and column.
    """

    columns: tuple[str, ...]
    series: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    def for_rows(self, bounds: np.ndarray) -> Normalizer:
        """A `Normalizer` holding each row's series statistics (N, n)."""
        lengths = np.diff(bounds)
        return self._pick(np.repeat(np.arange(len(lengths)), lengths))

    def for_windows(self, window_series: np.ndarray) -> Normalizer:
        """A `Normalizer` holding each window's statistics (W, 1, n), which
        broadcast over (W, T, K) forecasts."""
        rows = np.asarray(window_series)
        return Normalizer(
            self.columns, self.mean[rows][:, None, :], self.std[rows][:, None, :]
        )

    def of_series(self, j: int) -> Normalizer:
        """Series `j`'s statistics as a plain `Normalizer`."""
        return Normalizer(self.columns, self.mean[j], self.std[j])

    def table(self) -> pd.DataFrame:
        """One row per series and column: the statistics artifact."""
        n_series, n_columns = self.mean.shape
        return pd.DataFrame(
            {
                "series": np.repeat(self.series, n_columns),
                "column": np.tile(self.columns, n_series),
                "mean": self.mean.ravel(),
                "std": self.std.ravel(),
            }
        )

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> "SeriesNormalizer":
        """Inverse of `table` (a streamed run's `series_scaling.parquet`)."""
        columns = tuple(dict.fromkeys(table["column"]))
        series = tuple(dict.fromkeys(table["series"]))
        shape = (len(series), len(columns))
        return cls(
            columns, series, table["mean"].to_numpy(np.float64).reshape(shape),
            table["std"].to_numpy(np.float64).reshape(shape),
        )  # fmt: skip

    def _pick(self, rows: np.ndarray) -> Normalizer:
        return Normalizer(self.columns, self.mean[rows], self.std[rows])

    def to_dict(self) -> dict:
        """JSON-friendly form: columns, series and (S, n) statistics."""
        return {
            "columns": list(self.columns),
            "series": list(self.series),
            "mean": np.asarray(self.mean).tolist(),
            "std": np.asarray(self.std).tolist(),
        }

    @classmethod
    def from_dict(cls, stats: dict) -> "SeriesNormalizer":
        """Inverse of `to_dict`."""
        return cls(
            tuple(stats["columns"]), tuple(stats["series"]),
            np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64),
        )  # fmt: skip


def normalizer_from_dict(stats: dict) -> "Normalizer | SeriesNormalizer":
    """Either normalizer from its `to_dict` form (a `Normalizer`'s values are
    all {mean, std} mappings; a `SeriesNormalizer`'s `columns` is a list)."""
    if isinstance(stats.get("columns"), list):
        return SeriesNormalizer.from_dict(stats)
    return Normalizer.from_dict(stats)


def fit_series_normalizer(
    train: PreparedSplit, shared: list[str], mode: str = "series"
) -> SeriesNormalizer:
    """Fit on each series' training rows (`train.bounds`); `shared` columns
    and every column under `mode="global"` on all training rows together.
    A series constant on its training rows keeps its mean and takes the
    panel's standard deviation, so it is centred and never divided by zero."""
    frame, bounds = train.frame, train.bounds
    if train.padded is not None:  # statistics of the data, not of the padding
        frame = frame[train.real_rows()]
        bounds = unpadded_bounds(bounds, train.padded)
    panel = fit_normalizer(frame)  # raises on a column constant everywhere
    n_series = len(bounds) - 1
    mean = np.tile(np.asarray(panel.mean), (n_series, 1))
    std = np.tile(np.asarray(panel.std), (n_series, 1))
    if mode == "series":
        own = [j for j, c in enumerate(frame.columns) if c not in shared]
        series = np.repeat(np.arange(n_series), np.diff(bounds))
        grouped = frame.iloc[:, own].groupby(series)
        found_mean = grouped.mean().reindex(range(n_series)).to_numpy()
        found_std = grouped.std(ddof=0).reindex(range(n_series)).to_numpy()
        usable = np.isfinite(found_std) & (found_std > 0)
        mean[:, own] = np.where(np.isfinite(found_mean), found_mean, mean[:, own])
        std[:, own] = np.where(usable, found_std, std[:, own])
    return SeriesNormalizer(
        tuple(map(str, frame.columns)), train.series, mean, std
    )


