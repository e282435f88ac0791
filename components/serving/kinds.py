"""The kinds of forecaster by type tag, and the two places that choose one:
packaging a training run (`forecaster_for`) and opening a saved folder
(`load_saved`). Adding a kind is one module and one line in `KINDS`."""

import json
from pathlib import Path

from components.common.errors import DataError, invalid_value
from components.serving.forecaster import (
    FORMAT_VERSION,
    META_FILE,
    MODEL_FILE,
    READABLE_FORMATS,
    Forecaster,
)
from components.serving.panel import PanelForecaster
from components.serving.series import SeriesForecaster

KINDS: dict[str, type[Forecaster]] = {
    SeriesForecaster.TYPE: SeriesForecaster,
    PanelForecaster.TYPE: PanelForecaster,
}


def forecaster_for(
    model, normalizer, config, series, report, calibration=None
) -> Forecaster:
    """The forecaster a training run packages: a panel's when `series` has a
    panel layout, else one series'."""
    kind = SeriesForecaster if series.layout is None else PanelForecaster
    return kind.from_training(model, normalizer, config, series, report, calibration)


def load_saved(directory: Path) -> Forecaster:
    """Any folder written by `Forecaster.save` (format 2) or by rnnflow
    before it (format 1), as the kind its `type` tag names; the network
    loads with `safe_mode=True`.

    Raises:
        DataError: the folder's format or type is not one this code reads.
    """
    import keras

    import components.models.custom  # noqa: F401  (registers custom layers)

    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    found = meta.get("format")
    if found not in READABLE_FORMATS:
        raise DataError(
            invalid_value(
                "format",
                f"one of {list(READABLE_FORMATS)}",
                found,
                directory / META_FILE,
            )
            + "; retrain the model."
        )
    if found < FORMAT_VERSION:
        meta = _upgrade_format_1(meta)
    kind = KINDS.get(meta.get("type"))
    if kind is None:
        raise DataError(
            invalid_value(
                "type",
                f"one of {sorted(KINDS)}",
                meta.get("type"),
                directory / META_FILE,
            )
        )
    model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True)
    return kind._from_meta(model, meta)


def _upgrade_format_1(meta: dict) -> dict:
    """A format-1 forecaster.json read as format 2: the type from `kind`, a
    panel's statistics gathered into `normalizer`."""
    meta = dict(meta)
    if meta.pop("kind", None) == "panel":
        meta["type"] = "panel"
        meta["normalizer"] = {
            k: meta.pop(k) for k in ("columns", "series", "mean", "std")
        }
    else:
        meta["type"] = "series"
    return meta
