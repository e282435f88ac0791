"""The servable model: a `Forecaster` as an MLflow pyfunc model.

`mlflow.pyfunc.load_model(uri).predict(frame)` and `mlflow models serve` take a
DataFrame of raw observations (the last `input_width` rows or more) and answer
with forecasts in original units, one row per horizon step. The model folder
carries its own copy of `components/`, so it loads where rnnflow is not
installed (given the pinned packages).
"""

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from components.forecaster import Forecaster
from components.tracking import fluent_store

ARTIFACT_KEY = "forecaster"
# Progress bars for a two-file download only clutter flow logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """pyfunc entry points; all the work is `Forecaster.forecast`."""

    def load_context(self, context):
        self.forecaster = Forecaster.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context, model_input, params=None):
        return self.forecaster.forecast(model_input)


def log_forecaster(
    tracking_uri: str, run_id: str, forecaster: Forecaster, example: pd.DataFrame
) -> str:
    """Log `forecaster` as model `forecaster` of the run; return its model URI.

    Args:
        example: raw rows the model can forecast from (their last
            `history_rows` are kept): the input example and the signature.
    """
    from mlflow.models import Model, infer_signature

    example = example.iloc[-forecaster.history_rows :]
    output = forecaster.forecast(example)
    client = MlflowClient(tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(
        experiment_id, name=ARTIFACT_KEY, source_run_id=run_id
    )
    with (
        tempfile.TemporaryDirectory() as scratch,
        warnings.catch_warnings(),
        fluent_store(tracking_uri),  # Model.log resolves the store globally
    ):
        # `step` is an integer column by design; MLflow's hint about integer
        # columns and missing values does not apply to an output.
        warnings.filterwarnings(
            "ignore", message=".*integer column", category=UserWarning
        )
        warnings.filterwarnings("ignore", message=".*type hints", category=UserWarning)
        folder = forecaster.save(Path(scratch) / ARTIFACT_KEY)
        info = Model.log(
            artifact_path=None,
            name=ARTIFACT_KEY,
            flavor=mlflow.pyfunc,
            run_id=run_id,
            model_id=logged.model_id,
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={ARTIFACT_KEY: str(folder)},
            code_paths=[_code_copy(Path(scratch))],
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=_requirements(),
        )
    client.finalize_logged_model(logged.model_id, "READY")
    return info.model_uri


def load_forecaster(model_uri: str, tracking_uri: str) -> Forecaster:
    """The `Forecaster` inside a logged or registered pyfunc model."""
    with fluent_store(tracking_uri):
        model = mlflow.pyfunc.load_model(model_uri)
    return model.unwrap_python_model().forecaster


def _code_copy(scratch: Path) -> str:
    """`components/` without caches, for the model folder."""
    source = Path(__file__).resolve().parent
    target = scratch / "code" / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return str(target)


def _requirements() -> list[str]:
    from importlib.metadata import version

    packages = ["tensorflow", "keras", "pandas", "numpy", "pydantic", "pyyaml"]
    return [f"{p}=={version(p)}" for p in packages]
