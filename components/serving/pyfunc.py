"""The forecaster as MLflow's pyfunc sees it: `load_context` opens the saved
folder, `predict` forecasts. Logged by `components.tracking.packaging`;
`pyfunc_entry.py` beside this file is the models-from-code entry point."""

from pathlib import Path

import mlflow
import pandas as pd

from components.serving.kinds import load_saved

ARTIFACT_KEY = "forecaster"


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """pyfunc entry points; all the work is the forecaster's `forecast`."""

    def load_context(self, context):
        self.forecaster = load_saved(Path(context.artifacts[ARTIFACT_KEY]))

    # The type hint tells MLflow what comes in (it warned on every log without
    # one); a DataFrame hint infers no schema, so the signature stays ours.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.forecaster.forecast(model_input)
