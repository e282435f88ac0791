"""Series <-> tensorflow-datasets: read `tfds:` sources, write versioned snapshots.

A snapshot is the ingested, validated frame stored with TFDS's own builder
machinery (`store_as_tfds_dataset`), one example per row, so a run can be
repeated on exactly the same data: `data.path: tfds:NAME:VERSION` with
`data.tfds_dir`. Rows keep their order through a `_row` feature; a time index
is stored as a column named after it (ISO 8601 text for datetimes).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.common.errors import DataError

PREFIX = "tfds:"
ROW = "_row"


@dataclass(frozen=True)
class Snapshot:
    """Where a snapshot went and how to use it.

    Attributes:
        data_path: the `data.path` value that reads it back (`tfds:NAME:VERSION`).
        digest: the frame digest; a run on the snapshot logs the same one.
    """

    name: str
    version: str
    directory: str
    data_path: str
    digest: str
    rows: int
    time_column: str | None


def write_snapshot(
    frame: pd.DataFrame, name: str, version: str, data_dir: str | None, digest: str
) -> Snapshot:
    """Store `frame` (time index included) as TFDS dataset `name` at `version`.

    Raises:
        DataError: that name and version already exist (snapshots are immutable).
    """
    import tensorflow_datasets as tfds

    root = (
        Path(data_dir).expanduser() if data_dir else Path(tfds.core.constants.DATA_DIR)
    )
    target = root / name / version
    if target.exists():
        raise DataError(
            f"Snapshot {name}:{version} already exists at {target}; snapshots are "
            "never overwritten. Pass another --version."
        )
    table = frame.reset_index() if frame.index.name else frame.reset_index(drop=True)
    time_column = frame.index.name
    if isinstance(frame.index, pd.DatetimeIndex):
        table[time_column] = frame.index.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
    table[ROW] = np.arange(len(table), dtype=np.int64)
    features = tfds.features.FeaturesDict(
        {column: _feature(table[column]) for column in table.columns}
    )
    records = table.to_dict(orient="records")
    builder = tfds.dataset_builders.store_as_tfds_dataset(
        name=name,
        version=version,
        features=features,
        split_datasets={"train": list(enumerate(records))},
        data_dir=str(root),
        disable_shuffling=True,
        description=f"rnnflow snapshot; frame digest {digest}",
    )
    return Snapshot(
        name=name,
        version=version,
        directory=str(builder.data_dir),
        data_path=f"{PREFIX}{name}:{version}",
        digest=digest,
        rows=len(table),
        time_column=time_column,
    )


def read_tfds(spec: str, data_dir: str | None) -> pd.DataFrame:
    """Load `NAME[/CONFIG][:VERSION]` from `data_dir` as one frame, rows in order.

    A dataset that is not prepared there is downloaded and prepared by TFDS
    (which needs network access); every failure names the dataset and folder.
    """
    import tensorflow_datasets as tfds

    where = data_dir or "the default TFDS folder"
    try:
        builder = tfds.builder(spec, data_dir=data_dir)
        if not builder.is_prepared():
            builder.download_and_prepare()
        splits = list(builder.info.splits)
        dataset = builder.as_dataset(split="+".join(splits), shuffle_files=False)
        frame = tfds.as_dataframe(dataset)
    except DataError:
        raise
    except Exception as exc:  # TFDS raises many types; the user needs one message
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(
            f"Cannot load TFDS dataset {spec!r} from {where}: "
            f"{type(exc).__name__}: {first_line}"
        ) from None
    return _tidy(frame, spec)


def _tidy(frame: pd.DataFrame, spec: str) -> pd.DataFrame:
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and len(values) and isinstance(values.iloc[0], bytes):
            frame[column] = values.str.decode("utf-8")
        elif values.dtype == object:
            raise DataError(
                f"TFDS dataset {spec!r}: feature {column!r} is not a scalar; "
                "rnnflow reads datasets of scalar time-series features."
            )
    if ROW in frame.columns:
        frame = frame.sort_values(ROW).drop(columns=[ROW])
    return frame.reset_index(drop=True)


def _feature(column: pd.Series):
    import tensorflow_datasets as tfds

    if pd.api.types.is_float_dtype(column):
        return tfds.features.Scalar(np.float64)
    if pd.api.types.is_integer_dtype(column):
        return tfds.features.Scalar(np.int64)
    return tfds.features.Text()
