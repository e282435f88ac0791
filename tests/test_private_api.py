"""Each private Keras and MLflow attribute rnnflow uses still exists in the
installed versions; when one moves, this says which, in which version, and
where rnnflow uses it (components/common/private_api.py)."""

import importlib

import keras
import mlflow
import pytest

from components.common import private_api


def _owner(where: str):
    if where == "built keras.optimizers.Adam":
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build([keras.Variable([1.0])])
        return optimizer
    module, _, name = where.rpartition(".")
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    ("library", "where", "attribute"),
    [("keras", *pair) for pair in private_api.KERAS_ATTRIBUTES]
    + [("mlflow", *pair) for pair in private_api.MLFLOW_ATTRIBUTES],
)
def test_each_private_attribute_still_exists(library, where, attribute):
    version = {"keras": keras.__version__, "mlflow": mlflow.__version__}[library]
    assert hasattr(_owner(where), attribute), (
        f"{library} {version}: {where} has no `{attribute}` any more; "
        "update components/common/private_api.py"
    )


def test_the_adapters_work_on_a_real_model_and_optimizer():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0), loss="mse")
    model.optimizer.build(model.trainable_variables)
    assert "Dense" in private_api.layer_kinds(model)
    assert [type(x).__name__ for x in private_api.nested_layers(model)][-1] == "Dense"
    weights = model.trainable_variables
    momentums, velocities = private_api.adam_slots(model.optimizer, weights)
    assert [m.shape for m in momentums] == [v.shape for v in weights]
    assert len(velocities) == 2
    big = [keras.ops.ones((3, 2)) * 10, keras.ops.ones((2,)) * 10]
    clipped = private_api.clip_gradients(model.optimizer, big)
    for gradient in clipped:  # clipnorm: each gradient to norm 1
        assert float(keras.ops.sqrt(keras.ops.sum(gradient**2))) == pytest.approx(1.0)
    saved = private_api.global_uris()
    try:
        mlflow.set_tracking_uri("sqlite:///elsewhere.db")
        assert private_api.global_uris()[0] == "sqlite:///elsewhere.db"
    finally:
        private_api.set_global_uris(saved)
    assert private_api.global_uris() == saved
