"""The forecast of a streamed panel (`data.stream`): every series' next
`horizon` steps, read and written shard by shard, never the whole panel."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.config.schema import DataSpec, WindowSpec
from components.data.preprocess import SeriesNormalizer
from components.data.stream import SHARD_ROWS, group_files, read_shard, shard_files
from components.models import predict


@dataclass(frozen=True)
class PanelForecast:
    """What `forecast_panel` wrote: series per forecaster, and the origin
    (the newest last time of any series: a time stamp, or a number)."""

    counts: dict[str, int]
    origin: object


def forecast_panel(
    model, normalizer: SeriesNormalizer, data: DataSpec, window: WindowSpec,
    output: str, say=None, shard_rows: int = SHARD_ROWS,
) -> PanelForecast:
    """Forecast the `horizon` steps after every series' last row, shard by
    shard, appending to the Parquet file `output` (id, time, step, targets,
    forecaster); return how many series each forecaster covered.

    A series the model was trained on is scaled by its training statistics;
    a new one by its own rows' (`network, own statistics`); a series shorter
    than the window repeats its last value (`persistence`). The next time
    stamps continue each series' last spacing."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    say = say or (lambda _message: None)
    files = shard_files(data.path)
    rows = pads.dataset(files, format="parquet").count_rows()
    counts = {"network": 0, "network, own statistics": 0, "persistence": 0}
    writer, newest, datetime = None, None, False
    try:
        for group in group_files(files, rows, shard_rows):
            shard = read_shard(group, data)
            frame = _shard_forecast(model, normalizer, shard, data, window)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(output, table.schema)
            writer.write_table(table)
            last = shard.times[shard.bounds[1:] - 1].max()
            newest = last if newest is None else max(newest, last)
            datetime = shard.datetime
            who = frame.groupby("forecaster")[data.id_column].nunique()
            for name in counts:
                counts[name] += int(who.get(name, 0))
            say(f"forecast {sum(counts.values())} series")
    finally:
        if writer is not None:
            writer.close()
    origin = pd.Timestamp(int(newest), tz="UTC") if datetime else newest.item()
    return PanelForecast(counts, origin)


def _shard_forecast(model, normalizer, shard, data: DataSpec, window: WindowSpec):
    """One shard's rows of the forecast: every series' next `horizon` steps."""
    known = {name: j for j, name in enumerate(normalizer.series)}
    width, horizon = window.input_width, window.horizon
    lengths, ends = np.diff(shard.bounds), shard.bounds[1:]
    long = lengths >= width
    who = np.where(long, "network", "persistence").astype(object)
    x, mean, std = [], [], []
    for j in np.flatnonzero(long):
        at = known.get(shard.ids[j])
        if at is None:  # a series the model never saw: its own rows' statistics
            own = shard.values[shard.bounds[j] : ends[j]]
            m, s = own.mean(axis=0), own.std(axis=0)
            s = np.where(s > 0, s, 1.0)
            who[j] = "network, own statistics"
        else:
            m, s = normalizer.mean[at], normalizer.std[at]
        x.append(((shard.values[ends[j] - width : ends[j]] - m) / s).astype(np.float32))
        mean.append(m)
        std.append(s)
    values = np.repeat(shard.values[ends - 1][:, None, :], horizon, axis=1)
    if x:
        scaled = predict(model, np.stack(x))  # (n, T, K)
        values[long] = scaled * np.asarray(std)[:, None] + np.asarray(mean)[:, None]
    last = shard.times[ends - 1]
    spacing = np.where(lengths > 1, last - shard.times[np.maximum(ends - 2, 0)], 1)
    steps = np.arange(1, horizon + 1)
    times = (last[:, None] + spacing[:, None] * steps).ravel()
    columns = {
        data.id_column: np.repeat(shard.ids, horizon),
        data.time_column: pd.to_datetime(times, utc=True) if shard.datetime else times,
        "step": np.tile(steps, len(lengths)),
    }
    for i, name in enumerate(data.targets):
        columns[name] = values[:, :, i].ravel()
    columns["forecaster"] = np.repeat(who.astype(str), horizon)
    return pd.DataFrame(columns)
