"""The servable model: a forecaster logged as an MLflow pyfunc model.

`mlflow.pyfunc.load_model(uri).predict(frame)` and `mlflow models serve` take a
DataFrame of raw observations (the last `input_width` rows or more) and answer
with forecasts in original units, one row per horizon step. The model folder
carries its own copy of `components/`, so it loads where rnnflow is not
installed (given the pinned packages).
"""

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd

from components.serving.forecaster import Forecaster
from components.serving.kinds import load_saved
from components.serving.pyfunc import ARTIFACT_KEY
from components.tracking.models import log_model
from components.tracking.provenance import pinned
from components.tracking.store import fluent_store

_COMPONENTS = Path(__file__).resolve().parents[1]  # the package copied into models
_REQUIREMENTS = ["tensorflow", "keras", "pandas", "numpy", "pydantic", "pyyaml"]
# Progress bars for a two-file download only clutter flow logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def log_forecaster(
    tracking_uri: str, run_id: str, forecaster, example: pd.DataFrame
) -> str:
    """Log `forecaster` (one series' or a panel's) as model
    `forecaster` of the run; return its model URI.

    Args:
        example: raw rows the model can forecast from (their last
            `history_rows` are kept): the input example and the signature.
    """
    example = forecaster.example_rows(example)
    output = forecaster.forecast(example)
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        # `step` is an integer column by design; MLflow's hint about integer
        # columns and missing values does not apply to an output.
        warnings.filterwarnings(
            "ignore", message=".*integer column", category=UserWarning
        )
        folder = forecaster.save(Path(scratch) / ARTIFACT_KEY)
        return log_model(
            tracking_uri,
            run_id,
            ARTIFACT_KEY,
            mlflow.pyfunc,
            python_model=str(_COMPONENTS / "serving" / "pyfunc_entry.py"),
            artifacts={ARTIFACT_KEY: str(folder)},
            code_paths=[_code_copy(Path(scratch))],
            signature=_signature(example, output, forecaster.data.time_column),
            input_example=example,
            pip_requirements=pinned(_REQUIREMENTS),
        )


def load_model(model_uri: str, tracking_uri: str) -> mlflow.pyfunc.PyFuncModel:
    """A logged (`models:/m-...`, `runs:/RUN/forecaster`) or registered
    (`models:/NAME@champion`, `models:/NAME/3`) forecaster, as MLflow serves it.

    Raises:
        TrackingError: naming the URI and the store when it cannot be loaded.
    """
    with _loading(model_uri, tracking_uri):
        return mlflow.pyfunc.load_model(model_uri)


def load_forecaster(model_uri: str, tracking_uri: str) -> Forecaster:
    """The forecaster inside a logged or registered model, opened by this
    code from its saved folder (`artifacts/forecaster`): a model logged by an
    older rnnflow loads too, whatever code it carries (MLflow would put that
    copy after the `components` this process has already imported).

    Raises:
        TrackingError: naming the URI and the store when it cannot be loaded.
    """
    with tempfile.TemporaryDirectory() as scratch:
        with _loading(model_uri, tracking_uri):
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri, dst_path=scratch
            )
        return load_saved(Path(local) / "artifacts" / ARTIFACT_KEY)


@contextlib.contextmanager
def _loading(model_uri: str, tracking_uri: str) -> Iterator[None]:
    """MLflow's global store pointed at `tracking_uri`; what fails to load
    raises a TrackingError naming the URI, the store and what to do."""
    from mlflow.exceptions import MlflowException

    from components.common.errors import TrackingError
    from components.common.redact import redact_url

    try:
        with fluent_store(tracking_uri):
            yield
    except (MlflowException, OSError) as exc:
        message = getattr(exc, "message", str(exc))
        raise TrackingError(
            f"cannot load model {model_uri} from {redact_url(tracking_uri)}: "
            f"{message} (register a champion with `rnnflow retrain EXPERIMENT`, "
            "or pass --model-uri)"
        ) from None


def forecaster_of(model: mlflow.pyfunc.PyFuncModel) -> Forecaster:
    """The forecaster a loaded pyfunc model wraps."""
    return model.unwrap_python_model().forecaster


def _signature(example: pd.DataFrame, output: pd.DataFrame, time_column: str | None):
    """The inferred signature, with the time column typed `any`: callers send
    ISO strings (HTTP, a CSV read without parse_dates), datetimes or numbers
    (years), and the forecaster parses them like training data. MLflow's own
    check would refuse strings for a datetime column."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inferred = infer_signature(example, output)
    columns = [
        ColSpec(AnyType(), c.name) if c.name == time_column else c
        for c in inferred.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(columns), outputs=inferred.outputs)


def _code_copy(scratch: Path) -> str:
    """`components/` without caches, for the model folder."""
    source = _COMPONENTS
    target = scratch / "code" / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return str(target)
