"""Panels: many series in one long table (one row per series and time) that
one model learns together.

In memory a panel is the rows of every series one after another, sorted by
series then time, plus `bounds` (S + 1,): series j owns rows
[bounds[j], bounds[j + 1]). Windows never cross those bounds
(`windowing.window_starts`), and every split is cut at the same time for
every series, so no series' future enters another one's training.

Bad input is refused here, before any run opens, naming the series (and the
time) at fault.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.config.schema import DataSpec, SplitSpec, WindowSpec
from components.data.preprocess import (
    PreparedSplit,
    known_lead,
    prepare_split,
    split_rows,
)


@dataclass(frozen=True)
class PanelLayout:
    """Which rows belong to which series.

    Attributes:
        ids: the S series keys, sorted (several id columns are joined by "/").
        bounds: (S + 1,) row offsets; series j owns rows [bounds[j], bounds[j+1]).
    """

    ids: tuple[str, ...]
    bounds: np.ndarray

    def lengths(self) -> np.ndarray:
        return np.diff(self.bounds)


def index_panel(
    frame: pd.DataFrame, spec: DataSpec, source: str
) -> tuple[pd.DataFrame, PanelLayout, pd.DataFrame]:
    """Sort a long table by series and time and check its keys.

    Returns:
        the frame indexed by time without the id, time and static columns;
        its layout; and the static columns encoded as input channels (numeric
        ones as they are, others one-hot as `column=value`), row-aligned.
    """
    id_columns, time_column = spec.id_columns, spec.time_column
    keys = {"data.id_column": id_columns, "data.time_column": [time_column]}
    keys["data.static"] = spec.static
    for key, names in keys.items():
        absent = [c for c in names if c not in frame.columns]
        if absent:
            raise DataError(
                f"{source}: `{key}` names column(s) {absent} that the data does not "
                f"have; available: {list(map(str, frame.columns))}."
            )
    blank = frame[id_columns].isna().any(axis=1).to_numpy()
    if blank.any():
        raise DataError(
            f"{source}: `data.id_column` {id_columns} is empty at row "
            f"{int(blank.argmax())}; every row needs its series key."
        )
    codes, ids = _factorize_keys(frame, id_columns)
    time = _as_time(frame[time_column], time_column, source)
    order = np.lexsort((time_keys(time), codes))
    codes, time = codes[order], time.iloc[order].reset_index(drop=True)
    frame = frame.drop(columns=[*id_columns, time_column])  # not copied below
    frame = frame.iloc[order].reset_index(drop=True)
    stamps = time_keys(time)
    same = (codes[1:] == codes[:-1]) & (stamps[1:] == stamps[:-1])
    if same.any():
        row = int(same.argmax())
        raise DataError(
            f"{source}: series {ids[codes[row]]!r} has two rows at time "
            f"'{time.iloc[row]}' ({int(same.sum())} duplicate (id, time) pair(s) in "
            "all); keep one row per series and time."
        )
    bounds = np.searchsorted(codes, np.arange(len(ids) + 1)).astype(np.int64)
    layout = PanelLayout(tuple(map(str, ids)), bounds)
    static = static_channels(frame, spec.static, layout, source)
    rest = frame.drop(columns=spec.static)
    index = pd.Index(time, name=time_column)
    return rest.set_axis(index), layout, static.set_axis(index)


def _factorize_keys(frame: pd.DataFrame, id_columns: list[str]):
    """(each row's series code, the sorted series keys as text). One id
    column is factorized as it is (a category or text column of 10M rows
    costs its codes, not 10M new strings); several are joined first."""
    if len(id_columns) == 1:
        codes, uniques = pd.factorize(frame[id_columns[0]], sort=True)
        ids = np.asarray([str(u) for u in uniques], dtype=object)
        order = np.argsort(ids, kind="stable")  # text order, also for numeric ids
        if (order != np.arange(len(ids))).any():
            codes = np.argsort(order)[codes]
            ids = ids[order]
        return codes, ids
    return pd.factorize(series_keys(frame, id_columns).to_numpy(), sort=True)


def series_keys(frame: pd.DataFrame, id_columns: list[str]) -> pd.Series:
    """Each row's series key: its id columns as text, joined with "/"."""
    key = frame[id_columns[0]].astype(str)
    for column in id_columns[1:]:
        key = key + "/" + frame[column].astype(str)
    return key


def static_channels(
    frame: pd.DataFrame, columns: list[str], layout: PanelLayout, source: str
) -> pd.DataFrame:
    """The `data.static` columns as float input channels; each must hold one
    value per series (checked: a varying one names the series)."""
    channels = {}
    series = np.repeat(np.arange(len(layout.ids)), layout.lengths())
    for column in columns:
        values = frame[column]
        varying = values.groupby(series).nunique(dropna=False).to_numpy() > 1
        if varying.any():
            j = int(varying.argmax())
            seen = values.iloc[layout.bounds[j] : layout.bounds[j + 1]].unique()[:3]
            raise DataError(
                f"{source}: `data.static` column {column!r} varies within series "
                f"{layout.ids[j]!r} (values {list(seen)}); a static column holds "
                "one value per series. Use `data.features` for one that changes."
            )
        if pd.api.types.is_numeric_dtype(values) and values.notna().all():
            channels[column] = values.astype("float64").to_numpy()
            continue
        labels = values.astype(str)
        for label in sorted(labels.unique()):
            channels[f"{column}={label}"] = (labels == label).to_numpy(np.float64)
    return pd.DataFrame(channels, index=frame.index)


def check_series_frequency(
    index: pd.Index, layout: PanelLayout, frequency: str | None, source: str, check
) -> str | None:
    """A declared `data.frequency` holds in every series (`check` is the
    single-series check; the message names the series); unset, it is
    inferred from the longest series."""
    if not frequency:
        longest = int(np.argmax(layout.lengths()))
        a, b = layout.bounds[longest], layout.bounds[longest + 1]
        return check(index[a:b], None, source)
    for j, series in enumerate(layout.ids):
        a, b = layout.bounds[j], layout.bounds[j + 1]
        check(index[a:b], frequency, f"{source}: series {series!r}")
    return frequency


def time_keys(values) -> np.ndarray:
    """Time stamps as sortable numbers (nanoseconds for datetimes)."""
    values = pd.Index(values)
    if isinstance(values, pd.DatetimeIndex):
        return values.asi8
    return values.to_numpy()


def _as_time(column: pd.Series, name: str, source: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column):
        if column.isna().any():
            row = int(column.isna().to_numpy().argmax())
            raise DataError(f"{source}: time column {name!r} is empty at row {row}.")
        return column.reset_index(drop=True)
    try:
        return pd.to_datetime(column, utc=True).reset_index(drop=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: column {name!r} is not a time: {exc}") from None


@dataclass(frozen=True)
class PanelCut:
    """Where the panel's time axis is cut: train < `val_from` <= val <
    `test_from` <= test, the same for every series."""

    val_from: object
    test_from: object


def time_axis(index: pd.Index) -> np.ndarray:
    """The panel's time axis: every distinct time stamp of any series, sorted
    (as `time_keys`)."""
    return np.unique(time_keys(index))


def time_cut(index: pd.Index, split) -> PanelCut:
    """Cut the panel's time axis (every distinct time stamp of any series) by
    `split` as a single series of that length would be cut."""
    axis = time_axis(index)
    n_train, n_val, n_test = split_rows(len(axis), split)
    if n_test == 0:
        raise DataError(
            f"`split.test` ({split.test}) leaves no time stamp of the panel's "
            f"{len(axis)} for testing."
        )
    return PanelCut(axis[n_train], axis[n_train + n_val])


def cut_time(index: pd.Index, key):
    """A cut key of `time_cut` as a value comparable with `index`."""
    if isinstance(index, pd.DatetimeIndex):
        return pd.Timestamp(int(key), tz="UTC")
    return key


def cut_labels(index: pd.Index, cut: PanelCut) -> tuple[str, str]:
    """The cut's time stamps as text, for logs and params."""
    stamps = (cut.val_from, cut.test_from)
    if isinstance(index, pd.DatetimeIndex):
        return tuple(str(pd.Timestamp(int(k), tz="UTC")) for k in stamps)
    return tuple(f"{k:g}" if isinstance(k, float) else str(k) for k in stamps)


def split_bounds(
    index: pd.Index, layout: PanelLayout, cut: PanelCut, context: int = 0
) -> dict[str, list[tuple[int, int]]]:
    """Each split's (first, end) rows of every series (empty where a series
    has no rows in that split).

    Validation and test parts begin `context` rows before their cut (the
    inputs of their first window, from the split before): those rows are
    read, never scored, so every target of a window lies in its split and a
    short split still holds windows (8 test years, 3-year horizon: 6 windows
    per series). Statistics are fitted on the training part alone.
    """
    values = time_keys(index)
    out = {"train": [], "val": [], "test": []}
    for first, end in zip(layout.bounds[:-1], layout.bounds[1:]):
        times = values[first:end]
        to_val = first + int(np.searchsorted(times, cut.val_from, side="left"))
        to_test = first + int(np.searchsorted(times, cut.test_from, side="left"))
        out["train"].append((int(first), to_val))
        out["val"].append(_with_context(first, to_val, to_test, context))
        out["test"].append(_with_context(first, to_test, int(end), context))
    return out


def _with_context(first: int, start: int, end: int, context: int) -> tuple[int, int]:
    if end <= start:
        return (start, start)
    return (max(int(first), start - context), end)


@dataclass(frozen=True)
class PanelSplits:
    """A panel cut at one time for every series, each split prepared.

    Attributes:
        parts: train, val and test, each holding every kept series (a series
            may have no rows in val or test).
        cut: the first time stamp of val and of test, as text.
        skipped: series left out: too few training rows for one window.
        padded: series kept by padding (`data.short_series: pad`).
    """

    parts: dict[str, PreparedSplit]
    cut: tuple[str, str]
    skipped: tuple[str, ...]
    padded: tuple[str, ...] = ()


def split_panel(
    frame: pd.DataFrame,
    layout,
    split: SplitSpec,
    data: DataSpec,
    window: WindowSpec,
    targets: list[str],
    keep: list[str] = (),
) -> PanelSplits:
    """Cut every series at the same times (`time_cut`), then fill and
    transform each series' part of each split on its own (`prepare_split`),
    so nothing crosses a series boundary and no statistic sees a later
    split; validation and test parts carry the rows their first window
    reads before the cut (`split_bounds`).

    A series with fewer training rows than one window is padded
    (`data.short_series: pad`: its first row repeated in front, as many
    times as the window lacks, so it still lends the model windows; its
    validation and test parts likewise get their first window's inputs),
    left out (`skip`) or refused (`error`). Padding needs the targets of
    one window (`offset + horizon` rows) and one real input row; padded
    rows are counted per series (`PreparedSplit.padded`) and no statistic
    reads them."""
    cut = time_cut(frame.index, split)
    context = window.input_width + window.offset + (data.transform != "none")
    ranges = split_bounds(frame.index, layout, cut, context)
    plan, kept, skipped, padded = plan_rows(ranges, data, window)
    kept, skipped, padded = (
        [layout.ids[j] for j in found] for found in (kept, skipped, padded)
    )
    if skipped and data.short_series == "error":
        raise DataError(
            f"{len(skipped)} series have fewer training rows than one window "
            f"needs ({window.span}), first {skipped[0]!r}; set "
            "`data.short_series: pad` (or `skip`) to keep (or leave out) "
            "them, or shorten the window."
        )
    if not kept:
        raise DataError(
            f"no series has the {window.span} training rows one window needs "
            f"(training ends before {cut_labels(frame.index, cut)[0]}); "
            "shorten the window or change `split`."
        )
    out = _prepare(frame, plan, data, window, targets, keep, tuple(kept))
    return PanelSplits(out, cut_labels(frame.index, cut), tuple(skipped), tuple(padded))


def all_rows(
    frame: pd.DataFrame,
    layout: PanelLayout,
    data: DataSpec,
    window: WindowSpec,
    targets: list[str],
    keep: list[str] = (),
) -> PreparedSplit:
    """Every row of every series as one training part (`train.refit`),
    filled, transformed and padded (`data.short_series`) as `split_panel`
    prepares a training part."""
    ends = [(int(b), int(b)) for b in layout.bounds[1:]]
    ranges = {
        "train": [
            (int(a), int(b)) for a, b in zip(layout.bounds[:-1], layout.bounds[1:])
        ],
        "val": ends,
        "test": ends,
    }
    plan, kept, _, _ = plan_rows(ranges, data, window)
    if not kept:
        raise DataError(f"no series has the {window.span} rows one window needs.")
    kept = tuple(layout.ids[j] for j in kept)
    return _prepare(frame, {"train": plan["train"]}, data, window, targets, keep, kept)[
        "train"
    ]


def _prepare(
    frame, plan, data, window, targets, keep, kept
) -> dict[str, PreparedSplit]:
    """Each planned part: the rows selected at once when there is nothing to
    fill, transform or lead, else prepared series by series."""
    as_they_are = (
        data.transform == "none"
        and not known_lead(data, window)
        and not frame.isna().to_numpy().any()
    )
    if as_they_are:
        return _select_rows(frame, plan, targets, kept)
    return _prepare_each_series(frame, plan, data, window, targets, keep, kept)


def plan_rows(ranges, data: DataSpec, window: WindowSpec):
    """Which rows of each series each split reads, padding included
    (`split_panel`): ({split: [(first row, end row, rows padded in front)]
    per kept series}, and the kept, skipped and padded series' positions)."""
    lead_rows = data.transform != "none"
    context = window.input_width + window.offset + lead_rows
    need = window.span + lead_rows  # raw training rows one window needs
    least = window.offset + window.horizon + 1 + lead_rows
    pad = data.short_series == "pad"
    kept, skipped, padded, plan = [], [], [], {name: [] for name in ranges}
    for j in range(len(ranges["train"])):
        rows_train = ranges["train"][j]
        n_train = rows_train[1] - rows_train[0]
        if n_train < need and not (pad and n_train >= least):
            skipped.append(j)
            continue
        kept.append(j)
        if n_train < need:
            padded.append(j)
        ends = {"train": need, "val": context, "test": context}
        cuts = {
            "train": rows_train[0],
            "val": rows_train[1],
            "test": ranges["val"][j][1],
        }
        for name, (a, b) in ((n, r[j]) for n, r in ranges.items()):
            own = b - max(a, cuts[name]) if name != "train" else b - a
            have = (cuts[name] - a) if name != "train" else b - a
            extra = max(ends[name] - have, 0) if (pad and own > 0) else 0
            plan[name].append((a, b, extra))
    return plan, kept, skipped, padded


def _rows(a: int, b: int, extra: int) -> np.ndarray:
    """Rows [a, b) with row a repeated `extra` times in front (padding)."""
    return np.concatenate(
        [np.full(extra, a, np.int64), np.arange(a, b, dtype=np.int64)]
    )


def _prepare_each_series(frame, plan, data, window, targets, keep, kept):
    """Fill, transform and lead each series' part of each split on its own
    (`prepare_split`)."""
    lead = known_lead(data, window)
    out = {}
    for name, parts in plan.items():
        found = [
            prepare_split(frame.iloc[_rows(a, b, extra)], data, targets, keep, lead)
            for a, b, extra in parts
        ]
        lengths = [len(part.frame) for part in found]
        # under a transform the first (padded) row is dropped, and the first
        # real row's change is then taken from a padded one: as many rows
        # as were added still come from the padding
        padded = np.asarray([extra for *_, extra in parts], np.int64)
        out[name] = PreparedSplit(
            pd.concat([part.frame for part in found]) if found else frame.iloc[:0],
            pd.concat([part.levels for part in found])
            if found
            else frame[targets].iloc[:0],
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            kept,
            padded if padded.any() else None,
        )
    return out


def _select_rows(frame, plan, targets, kept):
    """What `_prepare_each_series` gives when there is nothing to fill,
    transform or lead: each split's rows of the kept series, in one
    selection (10,000 series: one `iloc` instead of 30,000)."""
    out = {}
    for name, parts in plan.items():
        spans = np.asarray(parts, np.int64).reshape(-1, 3)
        starts, ends, extra = spans[:, 0], spans[:, 1], spans[:, 2]
        lengths = ends - starts + extra
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        position = np.arange(offsets[-1]) - np.repeat(
            offsets[:-1], lengths
        )  # in series
        rows = np.repeat(starts, lengths) + np.maximum(
            position - np.repeat(extra, lengths), 0
        )
        part = frame.iloc[rows]
        padded = extra if extra.any() else None
        out[name] = PreparedSplit(part, part[targets], offsets, kept, padded)
    return out
