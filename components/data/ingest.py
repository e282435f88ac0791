"""Read a series from a file, an http(s) URL (cached, checksummed) or a package.

Everything is validated here, before any training: a bad file, column or value
raises `DataError` naming the source, the column and the first bad row.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.common.redact import redact_url
from components.config.schema import DataSpec
from components.data.panel import PanelLayout, check_series_frequency, index_panel
from components.data.sources import read_source
from components.data.validation import (
    as_float,
    calendar_features,
    check_frequency,
    index_by_time,
    looks_numeric,
    missing_message,
    pick_columns,
    wide_to_long,
)


@dataclass(frozen=True)
class LoadedSeries:
    """The validated frame (float64, only the columns in use) and where it came from.

    Attributes:
        frame: rows in time order; columns are `features` then extra `targets`.
        features: input column names.
        targets: predicted column names.
        source: the path or URL, credentials redacted.
        sha256: digest of the source file's bytes (for packaged and TFDS data,
            the frame digest).
        digest: `frame_digest` of the validated values (calendar columns aside):
            the same for a file and for its TFDS snapshot.
    """

    frame: pd.DataFrame
    features: list[str]
    targets: list[str]
    source: str
    sha256: str
    digest: str = ""
    frequency: str | None = None
    missing_counts: dict[str, int] = field(default_factory=dict)
    calendar_columns: list[str] = field(default_factory=list)
    # A panel (`data.id_column`): the rows of every series one after another;
    # `panel.PanelLayout` says which rows are whose. None for a single series.
    layout: PanelLayout | None = None
    static_columns: list[str] = field(default_factory=list)

    @property
    def shared_columns(self) -> list[str]:
        """Inputs that describe a time or a series, not an observation
        (calendar and static channels): never differenced, and scaled with
        one set of statistics for the whole panel."""
        return [*self.static_columns, *self.calendar_columns]


def load_series(spec: DataSpec) -> LoadedSeries:
    """Read, check and select the columns of one experiment's series.

    Calendar features are appended to the inputs. Missing values are counted;
    under `data.missing: error` any is an error, otherwise they are left for
    `preprocess.fill_missing`, which works within each split.
    """
    frame, sha256 = read_source(spec)
    return series_from_frame(frame, spec, redact_url(spec.path), sha256)


def read_raw(spec: DataSpec) -> pd.DataFrame:
    """The source's rows as read, before any check: what a caller of a served
    panel model sends it."""
    return read_source(spec)[0]


def series_from_frame(
    frame: pd.DataFrame, spec: DataSpec, source: str, sha256: str | None = None
) -> LoadedSeries:
    """Every check and selection of `load_series` on a frame already in memory.

    A packaged model runs its raw input through here, so serving sees exactly
    the validation (and calendar features) that training saw.
    """
    if frame.empty:
        raise DataError(f"{source}: the file has no rows.")
    if spec.layout == "panel":
        frame, spec = wide_to_long(frame, spec, source)
    frequency, layout, static = None, None, None
    if spec.id_column:
        frame, layout, static = index_panel(frame, spec, source)
        frequency = check_series_frequency(
            frame.index, layout, spec.frequency, source, check_frequency
        )
    elif spec.time_column is not None:
        frame = index_by_time(frame, spec.time_column, source)
        frequency = check_frequency(frame.index, spec.frequency, source)
    elif spec.frequency or spec.calendar:
        key = "data.frequency" if spec.frequency else "data.calendar"
        raise DataError(f"{source}: `{key}` needs `data.time_column` to be set.")
    if static is None:  # a single series has no static columns
        static = pd.DataFrame(index=frame.index)
    numeric = [c for c in frame.columns if looks_numeric(frame[c])]
    features = pick_columns(frame, spec.features, numeric, "data.features", source)
    targets = pick_columns(frame, spec.targets, numeric, "data.targets", source)
    known = pick_columns(frame, spec.known, numeric, "data.known", source)
    features = [f for f in features if f not in known] + known  # led, last
    columns = features + [t for t in targets if t not in features]
    selected = pd.DataFrame(
        {c: as_float(frame[c], c, source) for c in columns}, index=frame.index
    )
    missing = {c: int(n) for c, n in selected.isna().sum().items() if n}
    if missing and spec.missing == "error":
        raise DataError(missing_message(selected, missing, source))
    calendar = calendar_features(selected.index, spec.calendar, source)
    digest = frame_digest(selected)
    if layout is not None:  # the same values under other series keys differ
        series = np.repeat(np.arange(len(layout.ids)), layout.lengths())
        hashed = pd.concat([selected, static], axis=1).assign(_series=series)
        keys = "\n".join(layout.ids).encode()
        digest = hashlib.sha256(frame_digest(hashed).encode() + keys).hexdigest()
    return LoadedSeries(
        frame=pd.concat([selected, static, calendar], axis=1),
        features=features + list(static.columns) + list(calendar.columns),
        targets=targets,
        source=source,
        sha256=sha256 or digest,
        digest=digest,
        frequency=frequency,
        missing_counts=missing,
        calendar_columns=list(calendar.columns),
        layout=layout,
        static_columns=list(static.columns),
    )


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's index, column names and values, whatever the column
    order; vectorized, so it stays cheap on millions of rows."""
    ordered = frame[sorted(frame.columns, key=str)]
    digest = hashlib.sha256(repr([str(c) for c in ordered.columns]).encode())
    digest.update(repr(ordered.index.name).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=True).to_numpy().tobytes())
    return digest.hexdigest()
