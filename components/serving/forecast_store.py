"""The forecast store: every forecast a deployment made, kept as a Parquet
dataset partitioned by forecast origin, so monitoring can later join it with
the actuals that arrive.

One folder per origin (`origin=<label>/part-0.parquet`, hive-style, readable
by pandas, pyarrow, DuckDB or Spark as one table). Writing an origin is
idempotent and atomic: the rows go to a hidden file first, which then
replaces the origin's file in one rename, so a rerun replaces that origin's
rows (nothing duplicated) and a run killed half-way leaves the previous rows
(nothing lost, nothing half-written).
"""

import os
import uuid
from pathlib import Path

import pandas as pd

from components.common.errors import DataError

PART = "part-0.parquet"
# What every stored row says, besides the targets and their quantiles.
KEY_COLUMNS = ("series", "origin", "step", "time", "forecaster")


def origin_label(origin) -> str:
    """A forecast origin (the last observed time stamp) as a folder-safe
    label: ISO time for a timestamp (`2026-12-01T00:00:00`, colons kept:
    hive partitions allow them), the number itself for a row number or
    year."""
    if isinstance(origin, pd.Timestamp):
        return (
            origin.tz_convert(None).isoformat() if origin.tzinfo else origin.isoformat()
        )
    return str(origin)


# A staging file older than this was left by a killed writer (a live one
# renames its file within seconds).
STALE_SECONDS = 3600


def _sweep_stale(folder: Path) -> None:
    """Remove what killed writers left in `folder`: hidden staging files
    older than `STALE_SECONDS`."""
    import time

    for path in folder.glob(f".{PART}.*"):
        try:
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()
        except FileNotFoundError:  # another writer swept or renamed it
            pass


class ForecastStore:
    """The store under `root` (created on the first write)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path_of(self, origin) -> Path:
        return self.root / f"origin={origin_label(origin)}"

    def write(self, origin, rows: pd.DataFrame) -> Path:
        """Store `rows` as everything forecast at `origin`, replacing what was
        there; returns the origin's file. The rows are written to a hidden
        file beside it (readers skip names starting with "."), then renamed
        over it: one atomic step on a local file system."""
        missing = [c for c in KEY_COLUMNS if c not in rows.columns and c != "origin"]
        if missing:
            raise DataError(f"forecast rows lack column(s) {missing}")
        folder = self.path_of(origin)
        folder.mkdir(parents=True, exist_ok=True)
        _sweep_stale(folder)
        staging = folder / f".{PART}.{uuid.uuid4().hex}"
        try:
            rows.drop(columns=["origin"], errors="ignore").to_parquet(
                staging, index=False
            )
            os.replace(staging, folder / PART)
        finally:
            staging.unlink(missing_ok=True)
        return folder / PART

    def origins(self) -> list[str]:
        """The stored origins' labels, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name.split("=", 1)[1]
            for p in self.root.iterdir()
            if p.is_dir() and p.name.startswith("origin=") and (p / PART).is_file()
        )

    def read(self) -> pd.DataFrame:
        """Every stored row, with its `origin` label as a column."""
        frames = [
            pd.read_parquet(self.root / f"origin={label}" / PART).assign(origin=label)
            for label in self.origins()
        ]
        if not frames:
            return pd.DataFrame(columns=list(KEY_COLUMNS))
        return pd.concat(frames, ignore_index=True)
