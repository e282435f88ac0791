"""From a source to windows: reading (files, URLs with a cache, packaged
datasets, tensorflow-datasets), validation, panels, the chronological split,
normalizers fitted on training rows only, and windowing into tf.data."""

from components.common.lazy import lazy_surface

_SURFACE = {
    "ingest": "ingest",
    "LoadedSeries": "ingest",
    "load_series": "ingest",
    "read_raw": "ingest",
    "series_from_frame": "ingest",
    "sources": "sources",
    "read_table": "sources",
    "download": "download",
    "cache_path": "download",
    "datasets": "datasets",
    "validation": "validation",
    "panel": "panel",
    "preprocess": "preprocess",
    "split_chronologically": "preprocess",
    "fit_normalizer": "preprocess",
    "fit_series_normalizer": "preprocess",
    "prepare_split": "preprocess",
    "scale_split": "preprocess",
    "Normalizer": "preprocess",
    "SeriesNormalizer": "preprocess",
    "windowing": "windowing",
    "make_dataset": "windowing",
    "make_windows": "windowing",
    "snapshot": "snapshot",
    "csv_format": "csv_format",
}
__all__ = sorted(_SURFACE)
__getattr__, __dir__ = lazy_surface(__name__, _SURFACE)
