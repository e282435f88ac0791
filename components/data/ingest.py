"""Read a series from a file, an http(s) URL (cached, checksummed) or a package.

Everything is validated here, before any training: a bad file, column or value
raises `DataError` naming the source, the column and the first bad row.
"""

import base64
import hashlib
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from components.common.errors import DataError
from components.common.redact import URL_SCHEMES, redact_url
from components.config.schema import DataSpec
from components.data import csv_format, snapshot
from components.data.panel import PanelLayout, check_series_frequency, index_panel


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
    frame, sha256 = _read_source(spec)
    return series_from_frame(frame, spec, redact_url(spec.path), sha256)


def read_raw(spec: DataSpec) -> pd.DataFrame:
    """The source's rows as read, before any check: what a caller of a served
    panel model sends it."""
    return _read_source(spec)[0]


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
            frame.index, layout, spec.frequency, source, _check_frequency
        )
    elif spec.time_column is not None:
        frame = _index_by_time(frame, spec.time_column, source)
        frequency = _check_frequency(frame.index, spec.frequency, source)
    elif spec.frequency or spec.calendar:
        key = "data.frequency" if spec.frequency else "data.calendar"
        raise DataError(f"{source}: `{key}` needs `data.time_column` to be set.")
    if static is None:  # a single series has no static columns
        static = pd.DataFrame(index=frame.index)
    numeric = [c for c in frame.columns if _looks_numeric(frame[c])]
    features = _pick_columns(frame, spec.features, numeric, "data.features", source)
    targets = _pick_columns(frame, spec.targets, numeric, "data.targets", source)
    known = _pick_columns(frame, spec.known, numeric, "data.known", source)
    features = [f for f in features if f not in known] + known  # led, last
    columns = features + [t for t in targets if t not in features]
    selected = pd.DataFrame(
        {c: _as_float(frame[c], c, source) for c in columns}, index=frame.index
    )
    missing = {c: int(n) for c, n in selected.isna().sum().items() if n}
    if missing and spec.missing == "error":
        raise DataError(_missing_message(selected, missing, source))
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


WIDE_ID, WIDE_VALUE = "series", "value"  # a wide panel's id and value columns


def wide_to_long(
    frame: pd.DataFrame, spec: DataSpec, source: str
) -> tuple[pd.DataFrame, DataSpec]:
    """`data.layout: panel`: each target column (default every numeric one)
    becomes a series named after it, in a long table (time, series, value),
    with the settings to read that table as a panel."""
    time = spec.time_column
    if time not in frame.columns:
        raise DataError(
            f"{source}: `data.time_column` {time!r} is not a column; "
            f"available: {list(map(str, frame.columns))}."
        )
    others = [c for c in frame.columns if c != time]
    numeric = [c for c in others if _looks_numeric(frame[c])]
    columns = _pick_columns(frame, spec.targets, numeric, "data.targets", source)
    long = frame.melt(
        id_vars=[time], value_vars=columns, var_name=WIDE_ID, value_name=WIDE_VALUE
    )
    long[WIDE_ID] = long[WIDE_ID].astype(str)
    as_long = spec.model_copy(
        update={"layout": "table", "id_column": WIDE_ID, "targets": [WIDE_VALUE]}
    )
    return long, as_long


def calendar_features(index: pd.Index, names: list[str], source: str) -> pd.DataFrame:
    """Sine/cosine pairs of hour of day, day of week and week of year.

    A cyclic encoding puts 23:00 next to 00:00 and Sunday next to Monday.
    """
    if not names:
        return pd.DataFrame(index=index)
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{source}: `data.calendar` {names} needs a datetime `data.time_column`, "
            f"but the time index holds {index.dtype} values."
        )
    position = {
        "hour": (index.hour + index.minute / 60) / 24,
        "day": index.day_of_week / 7,
        "week": (index.isocalendar().week.to_numpy() - 1) / 52.1775,
    }
    columns = {}
    for name in names:
        angle = 2 * np.pi * np.asarray(position[name], dtype=np.float64)
        columns[f"{name}_sin"], columns[f"{name}_cos"] = np.sin(angle), np.cos(angle)
    return pd.DataFrame(columns, index=index)


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's index, column names and values, whatever the column
    order; vectorized, so it stays cheap on millions of rows."""
    ordered = frame[sorted(frame.columns, key=str)]
    digest = hashlib.sha256(repr([str(c) for c in ordered.columns]).encode())
    digest.update(repr(ordered.index.name).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Download cache: `RNNFLOW_CACHE_DIR`, else `~/.cache/rnnflow`."""
    configured = os.environ.get("RNNFLOW_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "rnnflow"


def cache_path(url: str) -> Path:
    """Where `url` is cached: a hash of the URL plus its file name, for humans."""
    parts = urllib.parse.urlsplit(url)
    name = Path(parts.path).name or "data"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_dir() / f"{key}-{name}"


def fetch_url(url: str, sha256: str | None = None) -> Path:
    """Download `url` once into the cache and check it against `sha256`.

    A cached copy whose checksum differs from `sha256` is an error, not a silent
    re-download: the data changed and the user should know.
    """
    target = cache_path(url)
    shown = redact_url(url)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = _download(url, shown)
        if payload.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            raise DataError(
                f"{shown} returned an HTML page, not data: check the URL points at "
                "the raw file (for GitHub, the raw.githubusercontent.com address)."
            )
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(payload)
        tmp.replace(target)
    if sha256 is not None:
        actual = file_sha256(target)
        if actual != sha256:
            raise DataError(
                f"{shown}: sha256 mismatch for the copy at {target}: expected "
                f"`data.sha256` {sha256}, got {actual}. Delete the file to "
                "download it again, or update `data.sha256`."
            )
    return target


# Answers that say "try again": rate limits and a busy or restarting server.
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)  # seconds before each retry; module-level for tests


def _download(url: str, shown: str) -> bytes:
    """GET with retries and exponential backoff on transient failures (the
    statuses above, timeouts, refused or reset connections); any other HTTP
    error (404, 401, ...) and an unknown host fail at once."""
    for attempt in range(len(RETRY_DELAYS) + 1):
        try:
            with urllib.request.urlopen(_request(url), timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code not in _TRANSIENT_STATUS or attempt == len(RETRY_DELAYS):
                tries = f" after {attempt + 1} tries" if attempt else ""
                raise DataError(
                    f"Cannot download {shown}: HTTP {exc.code} {exc.reason}{tries}."
                ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            unknown_host = isinstance(getattr(exc, "reason", exc), socket.gaierror)
            if unknown_host or attempt == len(RETRY_DELAYS):
                reason = getattr(exc, "reason", exc)
                tries = f" (after {attempt + 1} tries)" if attempt else ""
                raise DataError(f"Cannot download {shown}: {reason}{tries}.") from None
        time.sleep(RETRY_DELAYS[attempt])
    raise AssertionError("unreachable")


def _request(url: str) -> urllib.request.Request:
    """urllib does not read `user:password@` from a URL: send it as Basic auth."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    token = f"{urllib.parse.unquote(parts.username)}:"
    token += urllib.parse.unquote(parts.password or "")
    encoded = base64.b64encode(token.encode()).decode()
    return urllib.request.Request(bare, headers={"Authorization": f"Basic {encoded}"})


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_source(spec: DataSpec) -> tuple[pd.DataFrame, str | None]:
    """The raw frame and the source file's sha256 (None when there is no file)."""
    path = spec.path
    scheme = urllib.parse.urlsplit(path).scheme
    if path.startswith("statsmodels:"):
        return _read_statsmodels(path.split(":", 1)[1]), None
    if path.startswith(snapshot.PREFIX):
        return snapshot.read_tfds(
            path.removeprefix(snapshot.PREFIX), spec.tfds_dir
        ), None
    if scheme in URL_SCHEMES:
        local = fetch_url(path, spec.sha256)
        suffix = Path(urllib.parse.urlsplit(path).path).suffix
        return _read_file(local, suffix, redact_url(path)), file_sha256(local)
    if len(scheme) > 1:  # a one-letter scheme is a Windows drive
        raise DataError(
            f"Received an invalid value for `data.path`: scheme {scheme!r} is not "
            f"supported, expected a local path, http(s) URL, statsmodels:NAME or "
            f"tfds:NAME; "
            f"got {redact_url(path)!r}."
        )
    local = Path(path).expanduser()
    if local.is_dir():
        return read_parquet_dir(local, spec), None
    if not local.is_file():
        raise DataError(f"Data file {str(local)!r} (`data.path`) does not exist.")
    digest = file_sha256(local)
    if spec.sha256 is not None and digest != spec.sha256:
        raise DataError(
            f"{local}: sha256 mismatch: expected `data.sha256` {spec.sha256}, "
            f"got {digest}."
        )
    return _read_file(local, local.suffix, str(local)), digest


def read_parquet_dir(path: Path, spec: DataSpec) -> pd.DataFrame:
    """A folder of Parquet files, e.g. partitioned by series (hive style,
    `id=s1/part-0.parquet`: the folder names give the `id` column). When the
    experiment names its columns, only those are read from disk."""
    import pyarrow.dataset as pads

    try:
        dataset = pads.dataset(path, format="parquet", partitioning="hive")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as Parquet files: {exc}") from None
    if not dataset.files:
        raise DataError(f"{path}: the folder holds no .parquet files.")
    named = [spec.features, spec.targets] if spec.layout == "table" else [None]
    wanted = None
    if all(names is not None for names in named):
        wanted = list(dict.fromkeys(
            [*spec.id_columns, spec.time_column, *spec.static, *sum(named, [])]
        ))  # fmt: skip
        wanted = [c for c in wanted if c]
        absent = [c for c in wanted if c not in dataset.schema.names]
        if absent:
            raise DataError(
                f"{path}: column(s) {absent} named in `data` are not in the "
                f"Parquet files; available: {dataset.schema.names}."
            )
    frame = dataset.to_table(columns=wanted).to_pandas()
    for column in frame.columns:  # partition keys arrive as categories: of text
        if isinstance(frame[column].dtype, pd.CategoricalDtype):  # (10M rows: kept
            categories = frame[column].cat.categories  # codes, not 10M strings)
            frame[column] = frame[column].cat.rename_categories(categories.astype(str))
    return frame


def read_table(path: Path) -> pd.DataFrame:
    """A local CSV (any separator, BOM or not) or Parquet file, as read for training."""
    return _read_file(Path(path), Path(path).suffix, str(path))


def _read_file(path: Path, suffix: str, shown: str) -> pd.DataFrame:
    suffix = suffix.lower()
    if path.stat().st_size == 0:
        raise DataError(f"{shown}: the file is empty.")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv", ""):
            found = csv_format.sniff_file(path)
            return pd.read_csv(
                path,
                sep=found.sep,
                decimal=found.decimal,
                thousands=found.thousands,
                encoding="utf-8-sig",
            )
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(
            f"{shown}: cannot be parsed as {suffix or 'csv'}: {exc}"
        ) from None
    raise DataError(
        f"{shown}: unsupported file type {suffix!r}, expected .csv, .txt or .parquet."
    )


def _read_statsmodels(name: str) -> pd.DataFrame:
    import statsmodels.datasets as datasets  # optional heavy import, on demand

    module = getattr(datasets, name, None)
    if module is None or not hasattr(module, "load_pandas"):
        available = sorted(
            n for n in dir(datasets) if hasattr(getattr(datasets, n), "load_pandas")
        )
        raise DataError(
            f"Received an invalid value for `data.path`: statsmodels has no dataset "
            f"{name!r}; expected one of {available}."
        )
    frame = module.load_pandas().data
    return _LONG_FORMS[name](frame) if name in _LONG_FORMS else frame


def _fertility_long(wide: pd.DataFrame) -> pd.DataFrame:
    """statsmodels' World Bank fertility rates (one row per country, one column
    per year) as a panel: country, name, year, fertility (births per woman).
    Each country keeps the years from its first to its last reported value;
    the gaps inside stay missing, for `data.missing` to handle."""
    years = [c for c in wide.columns if str(c).isdigit()]
    long = wide.melt(
        id_vars=["Country Code", "Country Name"], value_vars=years,
        var_name="year", value_name="fertility",
    )  # fmt: skip
    long = long.rename(columns={"Country Code": "country", "Country Name": "name"})
    long["year"] = long["year"].astype(int)
    long = long.sort_values(["country", "year"], ignore_index=True)
    seen = long["fertility"].notna().groupby(long["country"])
    inside = seen.cummax() & seen.transform(lambda s: s[::-1].cummax()[::-1])
    return long[inside.to_numpy()].reset_index(drop=True)


# Panels statsmodels ships wide, returned long (one row per series and time).
_LONG_FORMS = {"fertility": _fertility_long}


def _index_by_time(frame: pd.DataFrame, column: str, source: str) -> pd.DataFrame:
    if column not in frame.columns:
        raise DataError(
            f"{source}: `data.time_column` {column!r} is not a column; "
            f"available: {list(map(str, frame.columns))}."
        )
    index = frame[column]
    if not pd.api.types.is_numeric_dtype(index):
        try:
            index = pd.to_datetime(index, utc=True)
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{source}: column {column!r} is not a time: {exc}"
            ) from None
    if index.duplicated().any():
        row = int(np.argmax(index.duplicated().to_numpy()))
        raise DataError(
            f"{source}: time column {column!r} has a duplicate value "
            f"'{index.iloc[row]}' at row {row}."
        )
    if not index.is_monotonic_increasing:
        later = index.iloc[1:].reset_index(drop=True)
        row = int(
            np.argmax((later < index.iloc[:-1].reset_index(drop=True)).to_numpy())
        )
        raise DataError(
            f"{source}: time column {column!r} is not sorted: row {row + 1} "
            f"('{index.iloc[row + 1]}') comes before row {row} ('{index.iloc[row]}')."
        )
    return frame.drop(columns=[column]).set_index(pd.Index(index, name=column))


def _looks_numeric(column: pd.Series) -> bool:
    """Numeric, or text in which some values parse as numbers: such a column is
    data with bad cells (reported by `_as_float`), not a label to skip."""
    if pd.api.types.is_numeric_dtype(column):
        return True
    if pd.api.types.is_bool_dtype(column) or column.isna().all():
        return False
    return bool(pd.to_numeric(column, errors="coerce").notna().any())


def _pick_columns(
    frame: pd.DataFrame,
    wanted: list[str] | None,
    numeric: list[str],
    key: str,
    source: str,
) -> list[str]:
    if wanted is None:
        if not numeric:
            raise DataError(f"{source}: no numeric column found; set `{key}`.")
        return list(map(str, numeric))
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: `{key}` names column(s) {missing} that the data does not "
            f"have; available: {list(map(str, frame.columns))}."
        )
    return list(wanted)


def _as_float(column: pd.Series, name: str, source: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{source}: column {name!r} must be numeric; row {row} holds "
            f"{column.iloc[row]!r}."
        )
    values = values.astype("float64")
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        row = int(np.argmax(infinite))
        raise DataError(
            f"{source}: column {name!r} holds a non-finite value "
            f"{float(values.iloc[row])} at row {row}."
        )
    return values


def _missing_message(frame: pd.DataFrame, counts: dict[str, int], source: str) -> str:
    first = {c: int(np.argmax(frame[c].isna().to_numpy())) for c in counts}
    detail = ", ".join(
        f"{c!r}: {n} (first at row {first[c]})" for c, n in counts.items()
    )
    return (
        f"{source}: missing values in {detail}. Set `data.missing` to interpolate, "
        "ffill or drop to handle them; rnnflow does not impute silently."
    )


def _check_frequency(index: pd.Index, frequency: str | None, source: str) -> str | None:
    """Check a declared frequency (gaps are errors) or infer one (None if irregular)."""
    if not isinstance(index, pd.DatetimeIndex):
        if frequency:
            raise DataError(
                f"{source}: `data.frequency` {frequency!r} needs datetime time stamps, "
                f"got {index.dtype} values."
            )
        return None
    if not frequency:
        return _infer_frequency(index)
    try:
        expected = pd.date_range(index[0], index[-1], freq=frequency)
    except ValueError as exc:
        raise DataError(
            f"Received an invalid value for `data.frequency`: {exc}"
        ) from None
    off_grid = index.difference(expected)
    if len(off_grid):
        raise DataError(
            f"{source}: {len(off_grid)} time stamp(s) are not on the "
            f"`data.frequency` {frequency!r} grid, the first {off_grid[0]}."
        )
    gaps = expected.difference(index)
    if len(gaps):
        raise DataError(
            f"{source}: {len(gaps)} time stamp(s) missing for `data.frequency` "
            f"{frequency!r}; first gaps: {_spans(gaps, expected)}."
        )
    return frequency


def _infer_frequency(index: pd.DatetimeIndex) -> str | None:
    if len(index) < 3:
        return None
    with pd.option_context("future.infer_freq_returns_offset", True):
        offset = pd.infer_freq(index)
    return offset.freqstr if offset is not None else None


def _spans(missing: pd.DatetimeIndex, grid: pd.DatetimeIndex, limit: int = 3) -> str:
    positions = grid.get_indexer(missing)
    runs, start = [], 0
    for i in range(1, len(positions) + 1):
        if i == len(positions) or positions[i] != positions[i - 1] + 1:
            runs.append((missing[start], missing[i - 1], i - start))
            start = i
    shown = [f"{a} to {b} ({n} step{'s' if n > 1 else ''})" for a, b, n in runs[:limit]]
    return "; ".join(shown) + (
        f"; and {len(runs) - limit} more" if len(runs) > limit else ""
    )
