"""One forecaster contract for one series or many: raw rows shaped like the
training source in, forecasts in original units out.

`SeriesForecaster` (one series) and `PanelForecaster` (many) are the two
kinds behind it. Callers never ask which one they hold: they call
`forecast`, `holdout`, `request_frame` and `save`, and open a saved one with
`kinds.load_saved`, the way GluonTS' predictors and Darts' global models are
used. A saved forecaster is a folder: `model.keras` (loaded with
`safe_mode=True`) and `forecaster.json`, which names its `type` and
`format`; `load_saved` finds the class again by that tag and refuses a
format it does not know.

Format history:
    1: written before components/ became packages; a panel said
       `"kind": "panel"` and kept its statistics at the top level.
    2: `"type"` names the kind; the normalizer serializes itself
       (`"normalizer"`).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from components.config.schema import DataSpec, WindowSpec
from components.data import preprocess
from components.evaluation.holdout import Holdout
from components.evaluation.intervals import Calibration

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MODEL_FILE = "model.keras"
META_FILE = "forecaster.json"


@dataclass(frozen=True, kw_only=True)
class Forecaster:
    """A trained network plus what turns raw rows into its inputs and its
    outputs back into original units.

    Attributes:
        data: the training run's data settings, columns pinned to what it
            used and the path redacted; only validation settings matter here.
        calendar_columns: input columns computed from the time index.
        calibration: how the served quantile columns come from the model's
            outputs (`components.evaluation.intervals.Calibration`).
    """

    TYPE: ClassVar[str] = ""
    # What `holdout` values are in, for the retrain gate's metric names.
    HOLDOUT_UNIT: ClassVar[str] = "raw"

    model: object  # keras.Model; untyped so this module imports without Keras
    normalizer: object  # preprocess.Normalizer | preprocess.SeriesNormalizer
    data: DataSpec
    window: WindowSpec
    calendar_columns: list[str]
    calibration: Calibration = field(default_factory=Calibration)

    @property
    def history_rows(self) -> int:
        """Raw rows of each series one forecast needs: the window, plus one
        under a transform."""
        return self.window.input_width + (self.data.transform != "none")

    @property
    def lead(self) -> int:
        """Rows ahead a forecast needs the known columns for (0: none)."""
        return preprocess.known_lead(self.data, self.window)

    @property
    def targets(self) -> list[str]:
        return list(self.data.targets)

    # What each kind answers (see SeriesForecaster and PanelForecaster).
    def forecast(self, frame: pd.DataFrame, skip_short: bool = True) -> pd.DataFrame:
        raise NotImplementedError

    def holdout(
        self, frame: pd.DataFrame, since, scale: dict | None = None, only=None
    ) -> Holdout:
        raise NotImplementedError

    def example_rows(self, raw: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def request_frame(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """The rows of `raw` (shaped like the training source) a forecast
        reads, and the series left out because the model has no statistics
        for them."""
        raise NotImplementedError

    def scale_of(self) -> dict:
        """series -> its scale, the units `holdout` divides by ({}: none)."""
        return {}

    @property
    def series_names(self) -> tuple[str, ...]:
        """The series the model has statistics for (() for one series)."""
        return ()

    def _meta(self) -> dict:
        """This kind's part of forecaster.json."""
        raise NotImplementedError

    @classmethod
    def _from_meta(cls, model, meta: dict) -> "Forecaster":
        raise NotImplementedError

    def save(self, directory: Path) -> Path:
        """Write `model.keras` and `forecaster.json` (type tag, format) into
        `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / MODEL_FILE)
        meta = {
            "format": FORMAT_VERSION,
            "type": self.TYPE,
            "data": self.data.model_dump(mode="json"),
            "window": self.window.model_dump(mode="json"),
            "calendar_columns": self.calendar_columns,
            "normalizer": self.normalizer.to_dict(),
            **self._meta(),
            **self.calibration.to_dict(),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @staticmethod
    def _common(meta: dict) -> dict:
        """Constructor arguments every kind reads from forecaster.json."""
        return {
            "data": DataSpec.model_validate(meta["data"]),
            "window": WindowSpec.model_validate(meta["window"]),
            "calendar_columns": meta["calendar_columns"],
            "normalizer": preprocess.normalizer_from_dict(meta["normalizer"]),
            "calibration": Calibration.from_dict(meta),
        }


