"""Rolling-origin backtests: where each fold's rows lie, and how folds add up.

One test split says how a model did on one stretch of the series; a backtest
asks the same question at several origins. Every fold is an ordinary
train/val/test split of a prefix (or a sliding stretch) of the series, so it
is prepared exactly like the main split: cleaned per split, normalized with
statistics of its own training rows, windowed, trained from scratch. Nothing
of a fold's test block or later is ever seen by its training.

Example (296 rows, split val=30 test=100, 3 folds, step 50, expanding):
    fold 0: train [0, 66)   val [66, 96)   test [96, 196)
    fold 1: train [0, 116)  val [116, 146) test [146, 246)
    fold 2: train [0, 166)  val [166, 196) test [196, 296)   (the test split)

A panel's folds are positions on its time axis (every distinct time stamp of
any series), cut for every series at once, as its main split is.
"""

import hashlib
import json
import statistics
from dataclasses import dataclass, replace

import numpy as np

from components.common.errors import DataError
from components.config.schema import BacktestSpec, SplitSpec, WindowSpec
from components.data import panel
from components.data.ingest import LoadedSeries
from components.data.preprocess import split_rows

RANGE_COLUMNS = ("fold", "train_start", "train_stop", "test_start", "test_stop")


@dataclass(frozen=True)
class Fold:
    """Rows [start, stop) of the series, split into train, val and test."""

    index: int
    start: int
    stop: int
    val_rows: int
    test_rows: int

    @property
    def test_start(self) -> int:
        return self.stop - self.test_rows

    @property
    def train_stop(self) -> int:
        return self.test_start - self.val_rows

    @property
    def split(self) -> SplitSpec:
        """The split that cuts this fold's rows (as row counts)."""
        return SplitSpec(val=self.val_rows, test=self.test_rows)

    def ranges(self) -> dict[str, int]:
        """Row bounds (RANGE_COLUMNS), for tables and cache keys."""
        values = (self.index, self.start, self.train_stop, self.test_start, self.stop)
        return dict(zip(RANGE_COLUMNS, values, strict=True))


def plan_folds(
    n_rows: int, split: SplitSpec, spec: BacktestSpec, window: WindowSpec
) -> list[Fold]:
    """The folds of a backtest of a series of `n_rows`, oldest first.

    Validation and test blocks keep the sizes `split` gives on the whole
    series. The last fold is the test split itself. Raises DataError, naming
    the keys to change, when the first fold leaves too few training rows.
    """
    if spec.folds < 2:
        return []
    _, n_val, n_test = split_rows(n_rows, split)
    step = spec.step or n_test
    first_stop = n_rows - (spec.folds - 1) * step
    first_train = first_stop - n_val - n_test
    if first_train < window.span:
        raise DataError(
            f"`evaluate.backtest.folds` ({spec.folds}) with `step` ({step} rows) "
            f"moves the first fold's test block back to rows [{first_stop - n_test}, "
            f"{first_stop}), leaving {max(first_train, 0)} training rows of "
            f"{n_rows}; a window needs {window.span}. Use fewer folds or a "
            "smaller `evaluate.backtest.step`."
        )
    folds = []
    for k in range(spec.folds):
        stop = first_stop + k * step
        start = k * step if spec.window == "sliding" else 0
        folds.append(Fold(k, start, stop, n_val, n_test))
    return folds


def axis_length(series: LoadedSeries) -> int:
    """What folds are positions on: a series' rows, a panel's time stamps."""
    if series.layout is None:
        return len(series.frame)
    return len(panel.time_axis(series.frame.index))


def fold_rows(series: LoadedSeries, fold: Fold) -> LoadedSeries:
    """The rows a fold trains and scores on: rows [start, stop) of a series;
    of a panel, each series' rows at the fold's time stamps [start, stop) of
    the panel's time axis (a series with none there is left out)."""
    if series.layout is None:
        return replace(series, frame=series.frame.iloc[fold.start : fold.stop])
    axis = panel.time_axis(series.frame.index)
    times = panel.time_keys(series.frame.index)
    keep = (times >= axis[fold.start]) & (times <= axis[fold.stop - 1])
    layout = series.layout
    counts = np.diff(np.concatenate([[0], np.cumsum(keep)])[layout.bounds])  # (S,)
    kept = counts > 0
    bounds = np.concatenate([[0], np.cumsum(counts[kept])]).astype(np.int64)
    ids = tuple(s for s, k in zip(layout.ids, kept, strict=True) if k)
    return replace(
        series, frame=series.frame[keep], layout=panel.PanelLayout(ids, bounds)
    )


def summarize(fold_metrics: list[dict[str, float]]) -> dict[str, float]:
    """`backtest_<metric>_mean` and `_std` (sample std) of every metric all
    folds report."""
    shared = set(fold_metrics[0]).intersection(*fold_metrics[1:])
    summary = {}
    for name in sorted(shared):
        values = [m[name] for m in fold_metrics]
        summary[f"backtest_{name}_mean"] = statistics.fmean(values)
        summary[f"backtest_{name}_std"] = (
            statistics.stdev(values) if len(values) > 1 else 0.0
        )
    return summary


def fold_key(fold: Fold, data_digest: str, training: dict, code: str) -> str:
    """Cache key of one fold's result: same rows of the same data, trained and
    scored the same way by the same code, gives the same numbers."""
    payload = json.dumps(
        {
            "fold": fold.ranges(),
            "data": data_digest,
            "training": training,
            "code": code,
        },
        sort_keys=True,
        default=str,
    )
    return "backtest-fold-" + hashlib.sha256(payload.encode()).hexdigest()[:32]
