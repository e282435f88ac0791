"""Read a source into a raw frame: a CSV or Parquet file, a folder of Parquet
files, an http(s) URL (through the download cache), a packaged dataset or a
tensorflow-datasets snapshot. Nothing is checked here beyond being readable.
"""

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd

from components.common.errors import DataError, invalid_value
from components.common.redact import URL_SCHEMES, redact_url
from components.config.schema import DataSpec
from components.data import csv_format, snapshot
from components.data.datasets import read_statsmodels
from components.data.download import fetch_url, file_sha256


def read_source(spec: DataSpec) -> tuple[pd.DataFrame, str | None]:
    """The raw frame and the source file's sha256 (None when there is no file)."""
    path = spec.path
    scheme = urllib.parse.urlsplit(path).scheme
    if path.startswith("statsmodels:"):
        return read_statsmodels(path.split(":", 1)[1]), None
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
            invalid_value(
                "data.path",
                "a local path, http(s) URL, statsmodels:NAME or tfds:NAME",
                redact_url(path),
            )
            + f" (scheme {scheme!r} is not supported)"
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
