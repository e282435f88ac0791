"""Models logged into a run: any flavor through one call that holds MLflow's
global store for the duration, and the Keras network itself.
"""

import mlflow
import numpy as np
from mlflow import MlflowClient

from components.tracking.store import fluent_store


def log_model(tracking_uri: str, run_id: str, name: str, flavor, **kwargs) -> str:
    """`Model.log` of `flavor` under this run, filed in the run's own experiment;
    return the model URI. `kwargs` go to the flavor's `save_model`.

    Left to itself, `Model.log` files the LoggedModel under the fluent default
    experiment 0, with artifacts in ./mlruns; so it is created here first.
    """
    from mlflow.models import Model

    client = MlflowClient(tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id)
    with fluent_store(tracking_uri):  # Model.log resolves the store globally
        info = Model.log(
            artifact_path=None,
            name=name,
            flavor=flavor,
            run_id=run_id,
            model_id=logged.model_id,
            **kwargs,
        )
    client.finalize_logged_model(logged.model_id, "READY")
    return info.model_uri


def log_keras_model(tracking_uri: str, run_id: str, model, name: str = "model") -> str:
    """Log `model` in the `mlflow.keras` flavor under this run; return its URI.

    Requirements are pinned from the running versions instead of MLflow's
    inference, which would load the model again in a subprocess.
    """
    from mlflow.models import infer_signature

    from components.models import predict_all
    from components.tracking.provenance import pinned

    example = np.zeros((1, *model.input_shape[1:]), dtype=np.float32)  # (1, L, C)
    return log_model(
        tracking_uri,
        run_id,
        name,
        mlflow.keras,
        model=model,
        signature=infer_signature(
            example, predict_all(model, example).astype("float32")
        ),
        pip_requirements=pinned(["tensorflow", "keras"]),
    )
